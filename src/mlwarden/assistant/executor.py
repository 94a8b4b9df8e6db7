"""Runs understood commands against the store: asks for what is missing, refuses production
changes without confirmation, and answers every command with what it did (or why not).

The CLI's plain commands (``mlwarden train …``, ``mlwarden deploy …``) build a
:class:`~mlwarden.assistant.parser.ParsedCommand` and call :meth:`Assistant.run`, so a typed
sentence and its CLI equivalent take exactly the same path.

One :class:`Assistant` serves everyone; what belongs to one user (the actor of the audit log,
what "it" means) is their :class:`Conversation`, passed with every call.

>>> import tempfile
>>> from mlwarden.store import Store
>>> assistant = Assistant(Store("sqlite://"), tempfile.mkdtemp())
>>> alice = Conversation("alice")
>>> reply = assistant.handle("load the titanic example", alice)
>>> reply.status, reply.result["dataset"]["rows"], alice.last_dataset
('done', 891, 'titanic')
>>> assistant.handle("deploy it to production", alice).status  # no model yet: asks which one
'needs_input'
>>> assistant.handle("upload /etc/passwd.csv", alice).http_status  # a server reads no paths
422
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import pandas as pd
from rich.table import Table

from mlwarden.agent.operations.service import Operations
from mlwarden.agent.policy import load_policy
from mlwarden.assistant import registry_adapter as moves
from mlwarden.assistant.cleaning import plan_cleaning, replay
from mlwarden.assistant.datasets import DatasetStore, DatasetVersion
from mlwarden.assistant.oncall import answer as oncall_answer
from mlwarden.assistant.parser import (
    HELP_TEXT,
    ParseContext,
    ParsedCommand,
    closest,
    parse,
    render_command,
    safe_name,
)
from mlwarden.assistant.training import (
    ExperimentLog,
    experiments_table_view,
    log_to_mlflow,
    metrics_table,
    train_model,
)
from mlwarden.datasets import DATASETS
from mlwarden.datasets import load as load_bundled
from mlwarden.errors import InvalidInput, MlwardenError, NotFound
from mlwarden.registry.preparation import ROW_ACTIONS
from mlwarden.registry.registry import Registry
from mlwarden.store import Store
from mlwarden.store.assistant import ConversationState

Status = Literal["done", "dry_run", "needs_input", "needs_confirmation", "not_understood", "error"]

QUESTIONS = {
    "dataset": "Which dataset? (e.g. 'titanic'; 'list datasets' shows them)",
    "target": "Which column should the model predict? (e.g. '... predicting Survived')",
    "model": "Which model? ('list models' shows them)",
    "path": "Which file? (e.g. 'upload data/sales.csv as sales', or 'load the titanic example')",
    "runs": "Which two runs? (e.g. 'compare runs 3 and 4'; 'show experiments' lists them)",
    "what": "List what: experiments, datasets or models?",
    "question": "Which question? (e.g. 'show open incidents', 'is titanic drifting?')",
}


@dataclass
class Reply:
    """The answer to one command. ``as_dict()`` is what the API returns."""

    status: Status
    parsed: ParsedCommand
    message: str
    result: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    http_status: int = 200

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "understood": self.parsed.to_dict(),
            "message": self.message,
            "notes": list(self.parsed.notes),
            "ignored": list(self.parsed.ignored),
            "result": self.result,
        }


@dataclass
class Conversation:
    """One user's session with the assistant: who acts, and what "it" is.

    The actor is the name every change is audited under, and the last dataset and model are
    what "it" means: both belong to one user, so each signed-in token (or dashboard session)
    has its own conversation and none is kept on the shared :class:`Assistant`.
    ``from_store`` starts an empty conversation from the newest dataset and trained model in
    the store, which is what "it" means to the CLI, where every command is a new process.
    """

    actor: str
    last_dataset: str | None = None
    last_model: str | None = None
    from_store: bool = False
    # where it is kept (:class:`Conversations`), and what was last kept there
    key: str | None = None
    kept: ConversationState | None = field(default=None, repr=False, compare=False)

    def state(self) -> ConversationState | None:
        if self.key is None:
            return None
        return ConversationState(self.key, self.actor, self.last_dataset, self.last_model)


class Conversations:
    """The conversations of a server, one per key (token or dashboard session), kept in the
    store: a restart, or another server process, carries each one on. Beyond ``limit``
    conversations the least recently changed are forgotten, so random keys cannot fill the
    database."""

    def __init__(self, store: Store, limit: int = 1_000) -> None:
        self.store = store
        self.limit = limit

    def get(self, key: str, actor: str) -> Conversation:
        """The conversation of ``key`` as last kept, started for ``actor`` when new (or when
        the key now belongs to someone else: a token name given to another person)."""
        kept = self.store.assistant_conversation(key)
        if kept is None or kept.actor != actor:
            return Conversation(actor, key=key)
        return Conversation(actor, kept.last_dataset, kept.last_model, key=key, kept=kept)

    def save(self, talk: Conversation) -> None:
        """Keep ``talk`` when it changed since it was read (a conversation without a key, the
        command line's, lives as long as its process)."""
        state = talk.state()
        if state is None or state == talk.kept:
            return
        self.store.save_assistant_conversation(state, limit=self.limit)
        talk.kept = state


class Assistant:
    """The command assistant over one store and data directory, shared by every user: what is
    per user travels in the :class:`Conversation` passed to each call.

    ``local_files`` lets commands read and write files by path (``upload data/x.csv``,
    ``download x to out.csv``): right for the CLI, where a person acts on their own machine;
    a server leaves it off, takes uploads as content (:meth:`upload`) and answers downloads
    with the file's bytes, so no caller reaches the server's file system.
    """

    def __init__(
        self,
        store: Store,
        data_dir: str | Path,
        *,
        local_files: bool = False,
        reference_size: int = 1_000,
        cv: int = 5,
        n_jobs: int = 1,
        on_deployment_change: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.data_dir = Path(data_dir)
        self.local_files = local_files
        self.reference_size = reference_size
        self.cv = cv
        self.n_jobs = n_jobs
        self.on_deployment_change = on_deployment_change
        self.registry = Registry(store)
        self.datasets = DatasetStore(store, self.data_dir)
        self.experiments = ExperimentLog(store)
        self.conversations = Conversations(store)

    # ----------------------------------------------------------------------------- parsing

    def context(self, talk: Conversation) -> ParseContext:
        """What exists now, for name matching, and what "it" is in ``talk``."""
        names = self.datasets.names()
        columns: dict[str, list[str]] = {}
        for version in self.datasets.versions():
            columns[version.name] = version.columns  # newest version wins (oldest first)
        for example in DATASETS:
            columns.setdefault(example, _bundled_columns(example))
        last_dataset, last_model = talk.last_dataset, talk.last_model
        if last_dataset is None and talk.from_store:
            newest = self.datasets.last()
            last_dataset = newest.name if newest else None
        if last_model is None and talk.from_store:
            run = self.experiments.last()
            last_model = run.model if run else None
        return ParseContext(
            datasets=names,
            models=self.store.model_names(),
            columns=columns,
            last_dataset=last_dataset,
            last_model=last_model,
        )

    def understand(self, text: str, talk: Conversation) -> ParsedCommand:
        return parse(text, self.context(talk))

    def handle(
        self, text: str, talk: Conversation, *, dry_run: bool = False, confirm: bool = False
    ) -> Reply:
        """Understand ``text`` and (unless ``dry_run``) run it as ``talk``'s actor."""
        parsed = self.understand(text, talk)
        if dry_run:
            return Reply("dry_run", parsed, f"understood: {parsed.command or parsed.intent}")
        return self.run(parsed, talk, confirm=confirm)

    # ----------------------------------------------------------------------------- running

    def run(self, parsed: ParsedCommand, talk: Conversation, *, confirm: bool = False) -> Reply:
        """Run an understood command; errors become a reply with the error's HTTP status."""
        if parsed.intent == "unknown":
            words = " ".join(parsed.arguments.get("not_understood", [])) or "(nothing)"
            notes = [n for n in parsed.notes if "never deletes" in n]
            message = (
                f"I did not understand: {words}. "
                + (notes[0] + ". " if notes else "")
                + "Try 'help' for what I can do."
            )
            return Reply("not_understood", parsed, message)
        if parsed.missing:
            questions = [QUESTIONS.get(slot, f"What is the {slot}?") for slot in parsed.missing]
            return Reply(
                "needs_input",
                parsed,
                " ".join(questions),
                {"missing": list(parsed.missing), "questions": questions},
            )
        handler = getattr(self, f"_do_{parsed.intent}")
        reply = _guarded(parsed, lambda: handler(parsed, talk, confirm))
        self.conversations.save(talk)  # what "it" is now, for the next command
        return reply

    def upload(self, filename: str, content: bytes, name: str | None, talk: Conversation) -> Reply:
        """Store uploaded ``content`` as a new version of ``name`` (default: from ``filename``)."""
        dataset = name if name is not None else safe_name(PurePosixPath(filename).stem)
        parsed = command_for("upload", {"path": filename, "name": dataset})

        def store() -> Reply:
            info = self.datasets.add_upload(filename, content, dataset)
            return self._stored(parsed, talk, info)

        reply = _guarded(parsed, store)
        self.conversations.save(talk)
        return reply

    def _local(self, what: str) -> None:
        """Refuse a command that would touch the server's own files."""
        if not self.local_files:
            raise InvalidInput(
                f"{what}: the server reads and writes no files by path. Upload the file's "
                "content (POST /v1/assistant/datasets, or the dashboard's upload form) and "
                "download datasets as responses (GET /v1/assistant/datasets/NAME/download)"
            )

    def _confirm(self, parsed: ParsedCommand, what: str) -> Reply:
        return Reply(
            "needs_confirmation",
            parsed,
            f"{what} changes what production serves: confirm it (--yes on the command line, "
            '"confirm": true in the API).',
        )

    def _operations(self, talk: Conversation) -> Operations:
        """The one service that changes deployments, acting as this conversation's user."""
        return Operations(self.store, actor=talk.actor)

    def _changed(self, model: str) -> None:
        if self.on_deployment_change is not None:
            self.on_deployment_change(model)

    # ----------------------------------------------------------------------------- datasets

    def _do_upload(self, parsed: ParsedCommand, talk: Conversation, confirm: bool) -> Reply:
        a = parsed.arguments
        if "example" in a:
            info = self.datasets.add_example(a["example"], a.get("name"))
        else:
            self._local(f"cannot upload {a['path']}")
            info = self.datasets.upload(a["path"], a.get("name"))
        return self._stored(parsed, talk, info)

    def _stored(self, parsed: ParsedCommand, talk: Conversation, info: DatasetVersion) -> Reply:
        talk.last_dataset = info.name
        return Reply(
            "done",
            parsed,
            f"stored {info.label}: {info.rows} rows, {len(info.columns)} columns",
            {"dataset": info.as_dict()},
        )

    def _do_clean(self, parsed: ParsedCommand, talk: Conversation, confirm: bool) -> Reply:
        a = parsed.arguments
        name = self._dataset_name(a["dataset"])
        source = self.datasets.get(name, a.get("version"))
        frame = self.datasets.frame(name, source.version)
        keep = [a["keep"]] if a.get("keep") else _default_keep(name, frame.columns)
        plan = plan_cleaning(frame, keep=keep, drop_non_numeric=bool(a.get("drop_non_numeric")))
        talk.last_dataset = name
        lines = plan.describe()
        result: dict[str, Any] = {"source": source.as_dict(), "plan": plan.as_dict(), "kept": keep}
        if a.get("plan_only"):
            return Reply(
                "done", parsed, "plan for " + source.label + ":\n" + _bullets(lines), result
            )
        if not plan.steps:
            return Reply("done", parsed, f"{source.label} is already clean; no new version", result)
        cleaned = plan.apply(frame)
        new = self.datasets.add_frame(
            name,
            cleaned,
            parent_version=source.version,
            description=f"cleaned from v{source.version}: {len(plan.steps)} changes",
            cleaning=plan.as_dict()["steps"],
        )
        result["dataset"] = new.as_dict()
        message = (
            f"plan for {source.label}:\n{_bullets(lines)}\n"
            f"stored {new.label}: {new.rows} rows, {len(new.columns)} columns "
            f"(was {source.rows} rows, {len(source.columns)} columns)\n"
            "a model trained on it takes the raw columns and cleans each row with these steps; "
            "steps that drop rows apply to the training data only"
        )
        return Reply("done", parsed, message, result)

    def _do_download(self, parsed: ParsedCommand, talk: Conversation, confirm: bool) -> Reply:
        a = parsed.arguments
        name = self._dataset_name(a["dataset"])
        fmt = a.get("format", "csv")
        if a.get("output") is not None:
            self._local(f"cannot write {a['output']}")
        if not self.local_files:
            # the caller fetches the bytes as a response; nothing is written on the server
            info = self.datasets.choose(
                name, a.get("version"), fmt=fmt, cleaned=bool(a.get("cleaned"))
            )
            talk.last_dataset = name
            return Reply(
                "done",
                parsed,
                f"{info.label} ({info.rows} rows) is ready to download as {fmt}",
                {"dataset": info.as_dict(), "format": fmt},
            )
        info, path = self.datasets.export(
            name, a.get("version"), output=a.get("output"), fmt=fmt, cleaned=bool(a.get("cleaned"))
        )
        talk.last_dataset = name
        return Reply(
            "done",
            parsed,
            f"wrote {info.label} ({info.rows} rows) to {path}",
            {"dataset": info.as_dict(), "path": str(path), "format": fmt},
        )

    def _dataset_name(self, name: str) -> str:
        if name in self.datasets.names():
            return name
        guess = closest(name, self.datasets.names())
        if guess is not None:
            return guess
        known = ", ".join(self.datasets.names()) or "none yet"
        hint = f" (a bundled example: 'load the {name} example')" if name in DATASETS else ""
        raise NotFound(f"no dataset named {name!r}{hint}; datasets: {known}", dataset=name)

    # ----------------------------------------------------------------------------- training

    def _do_train(self, parsed: ParsedCommand, talk: Conversation, confirm: bool) -> Reply:
        a = parsed.arguments
        dataset = str(a["dataset"])
        uploaded: DatasetVersion | None = None
        if dataset not in self.datasets.names() and Path(dataset).suffix:
            self._local(f"cannot read {dataset}")
            if not Path(dataset).expanduser().exists():
                raise NotFound(f"file not found: {dataset}", path=dataset)
            uploaded = self.datasets.upload(dataset, Path(dataset).stem.lower())
            dataset = uploaded.name
        elif dataset not in self.datasets.names() and dataset in DATASETS:
            uploaded = self.datasets.add_example(dataset)
        name = self._dataset_name(dataset)
        info = self.datasets.get(name, a.get("dataset_version"))
        lineage = self.datasets.lineage(name, info.version)
        raw: pd.DataFrame | None = None
        steps: list[dict[str, Any]] = []
        if lineage is None:
            frame = self.datasets.frame(name, info.version)
        else:
            # a cleaned version: its rows traced back to the raw ones, so the model can take
            # the raw columns and clean them itself
            root, steps = lineage
            raw = self.datasets.frame(name, root.version)
            frame = replay(raw, steps)
            raw = raw.loc[frame.index]
        target = str(a["target"])
        if target not in frame.columns:
            guess = closest(target, list(frame.columns))
            if guess is None:
                raise InvalidInput(
                    f"unknown column {target!r} in {info.label}; "
                    f"columns are: {list(frame.columns)}",
                    column=target,
                    columns=list(frame.columns),
                )
            target = guess
        model_name = a.get("model") or _model_name(name, target)
        result = train_model(
            frame,
            target,
            task=a.get("task"),
            algorithm=a.get("algorithm"),
            model_name=model_name,
            cv=self.cv,
            n_jobs=self.n_jobs,
            raw=raw,
            cleaning=steps,
        )
        registered = moves.ensure_model(self.registry, result.spec, talk.actor)
        # the held-out rows are the reference: the model has not seen them, like production
        version = self.registry.add_sklearn_version(
            model_name,
            result.estimator,
            X_reference=result.X_test,
            y_reference=list(result.y_test),
            metrics=result.metrics,
            description=f"{result.algorithm} on {info.label}",
            reference_rows=self.reference_size,
            actor=talk.actor,
        ).number
        run = self.experiments.log(
            model=model_name,
            version=version,
            dataset_name=name,
            dataset_version=info.version,
            params=result.params,
            metrics=result.metrics,
        )
        mlflow_run = log_to_mlflow(
            f"{model_name}-v{version}",
            result.params,
            result.metrics,
            result.estimator,
            self.data_dir,
        )
        talk.last_dataset, talk.last_model = name, model_name
        lines = [
            f"trained {result.algorithm} ({result.task}) on {info.label} predicting {target!r}",
            f"model {model_name!r} version {version} ({registered}); experiment run {run.id}",
        ]
        lines += [f"left out {col!r}: {why}" for col, why in result.dropped.items()]
        lines += result.notes
        cleaning: dict[str, Any] | None = None
        if lineage is not None:
            root = lineage[0]
            row_steps = [s for s in steps if s["action"] in ROW_ACTIONS]
            cleaning = {
                "from": root.label,
                "steps": len(steps),
                "inputs": list(result.spec.feature_names),
                "training_only": row_steps,
            }
            lines.append(
                f"the model takes the raw columns of {root.label} "
                f"({len(result.spec.feature_names)} inputs) and cleans each row itself with the "
                f"{len(steps) - len(row_steps)} column steps that made {info.label}"
            )
            unused = [f.name for f in result.spec.features if not f.monitored]
            if unused:
                cleaning["not_monitored"] = unused
                lines.append(
                    "inputs it accepts but does not use, so not watched for drift: "
                    + ", ".join(unused)
                )
            dropped_rows = ", ".join(_row_step_text(s) for s in row_steps) or "none here"
            lines.append(
                "steps that drop rows (repeated rows, rows without a target) applied to the "
                f"training data only ({dropped_rows}): the served model answers every row "
                "it is sent"
            )
        elif info.parent_version is not None:
            lines.append(
                f"{info.label} was cleaned before its steps were kept: the model takes its "
                "cleaned columns (clean the raw version again for a model taking raw rows)"
            )
        main = "accuracy" if result.task == "classification" else "r2"
        lines.append(f"{main} on the held-out test: {result.metrics[main]:.4f}")
        payload = {
            "model": model_name,
            "version": version,
            "experiment": run.id,
            "task": result.task,
            "algorithm": result.algorithm,
            "target": target,
            "dataset": {"name": name, "version": info.version},
            "features": result.features,
            "dropped": result.dropped,
            "notes": result.notes,
            "metrics": result.metrics,
            "mlflow_run": mlflow_run,
            "inputs": list(result.spec.feature_names),
            "cleaning": cleaning,
        }
        if uploaded is not None:
            payload["uploaded"] = uploaded.as_dict()
        table = metrics_table(result.metrics, title=f"{model_name} v{version}")
        return Reply("done", parsed, "\n".join(lines), payload, [table])

    # ----------------------------------------------------------------------------- deployment

    def _model_name(self, name: str) -> str:
        known = self.store.model_names()
        if name in known:
            return name
        guess = closest(name, known)
        if guess is not None:
            return guess
        prefixed = [m for m in known if m.startswith(f"{name}-")]
        if len(prefixed) == 1:
            return prefixed[0]
        hint = f"; did you mean one of {prefixed}?" if prefixed else ""
        raise NotFound(
            f"no model named {name!r}{hint} (models: {', '.join(known) or 'none yet'})", model=name
        )

    def _do_deploy(self, parsed: ParsedCommand, talk: Conversation, confirm: bool) -> Reply:
        a = parsed.arguments
        model = self._model_name(a["model"])
        environment = a.get("environment", "staging")
        if environment not in ("staging", "production"):
            raise InvalidInput(f"environment must be staging or production, got {environment!r}")
        version = a.get("version") or moves.newest_version(self.registry, model)
        if environment == "production" and not confirm:
            return self._confirm(parsed, f"deploying {model} version {version} to production")
        return self._go_live(
            parsed, talk, model, version, environment, f"assistant: {parsed.command}", "is live in"
        )

    def _go_live(
        self,
        parsed: ParsedCommand,
        talk: Conversation,
        model: str,
        version: int,
        environment: str,
        reason: str,
        verb: str,
    ) -> Reply:
        before = self.store.get_deployment(model, environment)
        after = self._operations(talk).deploy(
            model, version, reason=reason, environment=environment
        )
        talk.last_model = model
        self._changed(model)
        was = f" (was version {before.live_version})" if before and before.live_version else ""
        return Reply(
            "done",
            parsed,
            f"{model} version {version} {verb} {environment}{was}",
            {"deployment": after.model_dump(mode="json")},
        )

    def _do_promote(self, parsed: ParsedCommand, talk: Conversation, confirm: bool) -> Reply:
        a = parsed.arguments
        model = self._model_name(a["model"])
        version = a.get("version")
        if version is None:
            staging = self.store.get_deployment(model, "staging")
            if staging is None or staging.live_version is None:
                raise InvalidInput(
                    f"{model} has nothing live in staging to promote; deploy it to staging first "
                    f"('deploy {model} to staging')",
                    model=model,
                )
            version = staging.live_version
        if not confirm:
            return self._confirm(parsed, f"promoting {model} version {version} to production")
        reason = f"promoted from staging (assistant: {parsed.command})"
        return self._go_live(
            parsed, talk, model, version, "production", reason, "promoted from staging: live in"
        )

    def _do_rollback(self, parsed: ParsedCommand, talk: Conversation, confirm: bool) -> Reply:
        a = parsed.arguments
        model = self._model_name(a["model"])
        environment = a.get("environment", "production")
        before = self.store.get_deployment(model, environment)
        if before is None or before.live_version is None:
            raise NotFound(
                f"model {model!r} has never been deployed to {environment}; nothing to roll back",
                model=model,
            )
        if environment == "production" and not confirm:
            target = f"version {a['version']}" if a.get("version") else "its previous version"
            return self._confirm(parsed, f"rolling {model} back to {target}")
        reason = f"assistant: {parsed.command}"
        ops = self._operations(talk)
        if a.get("version"):
            after = ops.deploy(model, a["version"], reason=reason, environment=environment)
        else:
            after = ops.rollback(model, reason=reason, environment=environment)
        version = after.live_version
        talk.last_model = model
        self._changed(model)
        was = before.live_version if before else None
        return Reply(
            "done",
            parsed,
            f"{model} rolled back in {environment}: version {version} is live (was {was})",
            {"deployment": after.model_dump(mode="json")},
        )

    def _do_monitor(self, parsed: ParsedCommand, talk: Conversation, confirm: bool) -> Reply:
        a = parsed.arguments
        model = self._model_name(a["model"])
        enabled = bool(a.get("enabled", True))
        self.store.set_monitoring(model, enabled, actor=talk.actor)
        talk.last_model = model
        policy = _policy_summary(model)
        if not enabled:
            return Reply("done", parsed, f"monitoring of {model} is off", {"monitoring": False})
        return Reply(
            "done",
            parsed,
            f"monitoring {model} for drift, data quality and performance with the "
            f"{policy.get('source', 'default')} policy (mode {policy.get('mode', 'advisory')})",
            {"monitoring": True, "policy": policy},
        )

    # ----------------------------------------------------------------------------- listing

    def _do_list(self, parsed: ParsedCommand, talk: Conversation, confirm: bool) -> Reply:
        what = parsed.arguments["what"]
        if what == "experiments":
            runs = self.experiments.list(parsed.arguments.get("model"))
            rows = [run.as_dict() for run in runs]
            message = (
                f"{len(runs)} experiment runs" if runs else "no experiments yet; train a model"
            )
            return Reply(
                "done", parsed, message, {"experiments": rows}, [experiments_table_view(runs)]
            )
        if what == "datasets":
            versions = self.datasets.versions()
            table = Table(title="datasets")
            for column in ("name", "version", "rows", "columns", "from", "description"):
                table.add_column(column)
            for v in versions:
                parent = f"v{v.parent_version}" if v.parent_version else "-"
                table.add_row(
                    v.name, str(v.version), str(v.rows), str(len(v.columns)), parent, v.description
                )
            message = f"{len(versions)} dataset versions" if versions else "no datasets yet"
            return Reply(
                "done", parsed, message, {"datasets": [v.as_dict() for v in versions]}, [table]
            )
        models = []
        table = Table(title="models")
        for column in ("model", "task", "target", "versions", "staging", "production", "monitored"):
            table.add_column(column)
        for spec in self.store.list_models():
            numbers = [v.number for v in self.store.list_versions(spec.name)]
            staging = self.store.get_deployment(spec.name, "staging")
            production = self.store.get_deployment(spec.name, "production")
            row = {
                "model": spec.name,
                "task": spec.task.value,
                "target": spec.target,
                "versions": numbers,
                "staging": staging.live_version if staging else None,
                "production": production.live_version if production else None,
                "monitored": self.store.is_monitored(spec.name),
            }
            models.append(row)
            table.add_row(*(str(row[k]) if row[k] is not None else "-" for k in row))
        message = f"{len(models)} models" if models else "no models yet"
        return Reply("done", parsed, message, {"models": models}, [table])

    def _do_compare(self, parsed: ParsedCommand, talk: Conversation, confirm: bool) -> Reply:
        first, second = parsed.arguments["runs"][:2]
        comparison = self.experiments.compare(first, second)
        table = Table(title=f"run {first} vs run {second}")
        for column in ("metric", f"run {first}", f"run {second}", "difference"):
            table.add_column(column, justify="right")
        for row in comparison["metrics"]:
            table.add_row(row["metric"], *(_fmt(row[k]) for k in ("first", "second", "difference")))
        models = comparison["first"]["model"], comparison["second"]["model"]
        lines = [f"run {first} ({models[0]}) vs run {second} ({models[1]})"]
        lines += [f"{p['param']}: {p['first']} → {p['second']}" for p in comparison["params"]]
        return Reply("done", parsed, "\n".join(lines), comparison, [table])

    # ----------------------------------------------------------------------------- on call

    def _do_oncall(self, parsed: ParsedCommand, talk: Conversation, confirm: bool) -> Reply:
        a = parsed.arguments
        model = self._model_name(a["model"]) if a.get("model") else None
        message, result = oncall_answer(a["question"], self.store, model)
        if model is not None:
            talk.last_model = model
        return Reply("done", parsed, message, {"question": a["question"], **result})

    def _do_help(self, parsed: ParsedCommand, talk: Conversation, confirm: bool) -> Reply:
        return Reply("done", parsed, HELP_TEXT)


def command_for(intent: str, arguments: dict[str, Any]) -> ParsedCommand:
    """A ParsedCommand for a plain CLI command (nothing to resolve, nothing missing to ask)."""
    required = {
        "upload": [],
        "clean": ["dataset"],
        "train": ["dataset", "target"],
        "deploy": ["model"],
        "promote": ["model"],
        "rollback": ["model"],
        "monitor": ["model"],
        "download": ["dataset"],
        "list": ["what"],
        "compare": ["runs"],
        "oncall": ["question"],
    }.get(intent, [])
    missing = [slot for slot in required if arguments.get(slot) in (None, [], "")]
    return ParsedCommand(intent, arguments, render_command(intent, arguments), missing)


def _guarded(parsed: ParsedCommand, work: Callable[[], Reply]) -> Reply:
    """``work()``, or the reply of the error it raised (with the error's HTTP status)."""
    try:
        return work()
    except MlwardenError as exc:
        return Reply(
            "error",
            parsed,
            exc.message,
            {"error": exc.message, "detail": exc.detail},
            http_status=exc.status_code,
        )


def _model_name(dataset: str, target: str) -> str:
    return safe_name(f"{dataset}-{target}")


def _default_keep(name: str, columns: Any) -> list[str]:
    """The bundled example's target stays as it is (cleaning must not encode the label)."""
    example = DATASETS.get(name)
    return [example.target] if example is not None and example.target in columns else []


@lru_cache(maxsize=8)
def _bundled_columns(example: str) -> list[str]:
    return list(load_bundled(example).columns)


def _policy_summary(model: str) -> dict[str, Any]:
    try:
        policy = load_policy()
        chosen = policy.for_model(model)
        return {"source": "default", "mode": str(getattr(chosen, "mode", "advisory"))}
    except (MlwardenError, ValueError):
        return {"source": "default", "mode": "advisory"}


def _row_step_text(step: dict[str, Any]) -> str:
    rows = step.get("rows", "some")
    if step["action"] == "drop_duplicates":
        return f"{rows} repeated rows"
    return f"{rows} rows without {step.get('column')!r}"


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"  - {line}" for line in lines)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"
