"""Deterministic parser of plain-language assistant commands (no language model).

A command is read in three passes over its words:

1. the *intent* comes from a table of verbs and their paraphrases ("train", "fit", "build" …),
   multi-word phrases first ("roll back", "keep an eye on"), then — when no verb is spelled
   exactly — the closest verb within a small edit distance, so "trian" and "deploi" still work;
2. the *arguments* are filled by small slot readers (environment, version, file path, target
   column, algorithm, task, names after "as"/"named"), each consuming the words it used;
3. names are resolved: known datasets, models and columns match case-insensitively and within
   the same edit distance, and "it"/"that" means the last dataset or model of the session.

Typos are measured with the optimal string alignment distance (Levenshtein distance plus
adjacent transpositions; Damerau, F. J. (1964). A technique for computer detection and
correction of spelling errors. CACM 7(3)), and a word may only be that far from a candidate:
no typo for words of up to 4 letters, one up to 8, two beyond.

>>> command = parse("trian a clasifier on titanc to predict survivd",
...                 ParseContext(datasets=["titanic"], columns={"titanic": ["Survived", "Fare"]}))
>>> command.to_dict()["intent"], command.arguments["dataset"], command.arguments["target"]
('train', 'titanic', 'Survived')
>>> command.command
'mlwarden train --dataset titanic --target Survived --task classification --model titanic-survived'
>>> parse("deploy it to staging", ParseContext(last_model="titanic-survived")).command
'mlwarden deploy titanic-survived --env staging'
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal, get_args

from mlwarden.datasets import DATASETS

Intent = Literal[
    "train",
    "clean",
    "upload",
    "deploy",
    "promote",
    "rollback",
    "monitor",
    "download",
    "list",
    "compare",
    "oncall",
    "help",
    "unknown",
]
INTENTS: tuple[str, ...] = get_args(Intent)
ENVIRONMENTS = ("staging", "production")
ALGORITHMS = (
    "logistic_regression",
    "linear_regression",
    "random_forest",
    "gradient_boosting",
    "lightgbm",
)
FILE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".json", ".jsonl")

# Words whose meaning is an intent. Inflections are listed rather than stemmed: a stemmer
# would also turn "deployment" or "cleaner" into verbs.
VERBS: dict[str, str] = {
    **dict.fromkeys(["train", "trains", "training", "trained", "fit", "fits", "fitting"], "train"),
    **dict.fromkeys(["build", "builds", "learn", "retrain"], "train"),
    **dict.fromkeys(["clean", "cleans", "cleaning", "cleanup", "tidy", "preprocess"], "clean"),
    **dict.fromkeys(["sanitize", "sanitise", "scrub", "prepare", "prep"], "clean"),
    **dict.fromkeys(["upload", "uploads", "import", "ingest", "load", "add", "read"], "upload"),
    **dict.fromkeys(["deploy", "deploys", "deploying", "ship", "release", "publish"], "deploy"),
    **dict.fromkeys(["serve", "push"], "deploy"),
    **dict.fromkeys(["promote", "promotes", "promoting", "graduate", "move"], "promote"),
    **dict.fromkeys(["rollback", "roll", "revert", "downgrade", "unroll"], "rollback"),
    **dict.fromkeys(["monitor", "monitors", "monitoring", "watch", "track", "observe"], "monitor"),
    **dict.fromkeys(["unmonitor", "unwatch"], "monitor"),
    **dict.fromkeys(["download", "downloads", "export", "save", "dump", "write"], "download"),
    **dict.fromkeys(["list", "show", "display", "ls", "view", "see", "what", "which"], "list"),
    **dict.fromkeys(["compare", "comparing", "diff", "versus", "vs"], "compare"),
    **dict.fromkeys(["help", "usage", "commands", "?"], "help"),
}
PHRASES: dict[tuple[str, ...], str] = {
    ("roll", "back"): "rollback",
    ("roll", "out"): "deploy",
    ("rolled", "back"): "rollback",
    ("go", "back"): "rollback",
    ("clean", "up"): "clean",
    ("tidy", "up"): "clean",
    ("keep", "an", "eye", "on"): "monitor",
    ("turn", "on", "monitoring"): "monitor",
    ("start", "monitoring"): "monitor",
    ("stop", "monitoring"): "monitor",
    ("turn", "off", "monitoring"): "monitor",
    ("disable", "monitoring"): "monitor",
    ("pause", "monitoring"): "monitor",
    ("what", "can", "you", "do"): "help",
    ("how", "do", "i"): "help",
    ("give", "me"): "download",
    ("put", "in"): "deploy",
}
# Verbs too common in other senses to be guessed from a typo.
NO_FUZZY = {"add", "read", "see", "ls", "vs", "what", "which", "push", "move", "view", "fit"}
MONITOR_OFF = {"unmonitor", "unwatch", "stop", "off", "disable", "pause"}
# What a model is watched for: monitoring covers all of them, so they name no model.
MONITOR_ASPECTS = {"performance", "accuracy", "quality", "metrics", "predictions", "errors"}
# "the model", "my model": the model this session is about, as "it" is.
THE_MODEL = {"the", "my", "our", "this", "that", "current"}
# Words saying which version of a dataset: the cleaned one.
CLEANED_WORDS = {"cleaned", "clean", "cleansed", "tidied", "processed", "preprocessed"}
STATE_WORDS = CLEANED_WORDS | {"prepared", "raw", "original", "latest", "new"}
# "drop non-numeric columns": every column that is not a number goes, the target excepted
NON_NUMERIC = {"non-numeric", "nonnumeric", "non-numerical", "non-number"}
# On-call questions, answered from the store: (words that must all be there, the question).
# The first row whose words are all in the sentence wins, so specific rows come first.
ONCALL_QUESTIONS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"drift", "report"}), "drift_report"),
    (frozenset({"why", "failing"}), "failing"),
    (frozenset({"why", "failed"}), "failing"),
    (frozenset({"why", "broken"}), "failing"),
    (frozenset({"why", "wrong"}), "failing"),
    (frozenset({"failing"}), "failing"),
    (frozenset({"incidents"}), "incidents"),
    (frozenset({"incident"}), "incidents"),
    (frozenset({"drifting"}), "drifting"),
    (frozenset({"drifted"}), "drifting"),
    (frozenset({"agent", "do"}), "activity"),
    (frozenset({"agent", "did"}), "activity"),
    (frozenset({"agent", "done"}), "activity"),
    (frozenset({"agent", "doing"}), "activity"),
)
ONE_MODEL_QUESTIONS = {"failing", "drifting", "drift_report"}
ONCALL_GLUE = {"why", "is", "are", "was", "what", "did", "show", "me", "open", "today", "list"}
ONCALL_GLUE |= {"the", "a", "any", "there", "has", "have", "been", "of", "for", "s", "so"}
NOUN_LISTS: dict[str, str] = {
    **dict.fromkeys(["experiments", "experiment", "runs", "run", "results"], "experiments"),
    **dict.fromkeys(["history"], "experiments"),
    **dict.fromkeys(["datasets", "dataset", "data", "tables", "files"], "datasets"),
    **dict.fromkeys(["models", "model"], "models"),
}
ENV_WORDS: dict[str, str] = {
    **dict.fromkeys(["staging", "stage", "stg", "test", "testing", "preprod"], "staging"),
    **dict.fromkeys(["production", "prod", "live", "prd"], "production"),
}
TASK_WORDS: dict[str, str] = {
    **dict.fromkeys(["classifier", "classifiers", "classification", "classify"], "classification"),
    **dict.fromkeys(["categorise", "categorize", "binary"], "classification"),
    **dict.fromkeys(["regression", "regressor", "regress", "regressors"], "regression"),
}
ALGORITHM_PHRASES: dict[tuple[str, ...], str] = {
    ("logistic", "regression"): "logistic_regression",
    ("logistic",): "logistic_regression",
    ("logreg",): "logistic_regression",
    ("linear", "regression"): "linear_regression",
    ("linear", "model"): "linear_regression",
    ("linear",): "linear_regression",
    ("ridge",): "linear_regression",
    ("random", "forest"): "random_forest",
    ("random", "forests"): "random_forest",
    ("forest",): "random_forest",
    ("rf",): "random_forest",
    ("gradient", "boosting"): "gradient_boosting",
    ("gradient", "boosted", "trees"): "gradient_boosting",
    ("gradient", "boosted"): "gradient_boosting",
    ("boosting",): "gradient_boosting",
    ("gbm",): "gradient_boosting",
    ("gbdt",): "gradient_boosting",
    ("lightgbm",): "lightgbm",
    ("lgbm",): "lightgbm",
    ("light", "gbm"): "lightgbm",
}
# Words that carry no argument of their own: articles, courtesy, glue between slots.
FILLER = set(
    """
    a an the to on of for in into at from with using please pls my me our new model
    models data dataset and now then can could would you i want let's lets us be that
    this is are it file called named as by version run runs drift changes problems table
    all latest current env environment again some one which column target label predict
    predicting predicts format there do get make create set up example sample bundled
    demo results experiments experiment datasets start turn off keep eye its their
    cleaned clean back previous earlier last good old prior
    """.split()  # noqa: SIM905 (a word list reads better than 90 quoted strings)
)
DESTRUCTIVE_WORDS = {"delete", "remove", "drop", "erase", "destroy", "purge", "wipe", "rm"}
ARTICLES = {"a", "an", "the", "please", "pls"}
IT_WORDS = {"it", "that", "this", "them", "same"}
NAME_MARKERS = {"as", "named", "called", "name"}
TARGET_MARKERS = {"predict", "predicting", "predicts", "target", "label", "estimate", "forecast"}
TARGET_MARKERS_WEAK = {"for", "of"}
DATASET_MARKERS = {"on", "from", "using", "dataset", "data", "with", "over"}


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, transpositions.

    >>> edit_distance("trian", "train"), edit_distance("deploi", "deploy"), edit_distance("a", "")
    (1, 1, 1)
    """
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]


def typo_budget(word: str) -> int:
    """How many edits a word may be away from what it is taken for."""
    if len(word) <= 4:
        return 0
    return 1 if len(word) <= 8 else 2


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``word`` most plausibly means: exact (case-insensitive) first, then the one
    unique nearest within the typo budget; None when nothing is close or two are equally close.

    >>> closest("survivd", ["Survived", "Fare"]), closest("xyz", ["Survived"])
    ('Survived', None)
    """
    low = word.lower()
    candidates = list(dict.fromkeys(candidates))
    for candidate in candidates:
        if candidate == word:
            return candidate
    exact = [c for c in candidates if c.lower() == low]
    if exact:
        return exact[0]
    budget = typo_budget(low)
    if budget == 0:
        return None
    scored = sorted((edit_distance(low, c.lower()), c) for c in candidates)
    best = [c for d, c in scored if d == scored[0][0]] if scored else []
    if scored and scored[0][0] <= budget and len(best) == 1:
        return best[0]
    return None


@dataclass
class ParseContext:
    """What the parser may know besides the words: names that exist and the session so far."""

    datasets: Sequence[str] = ()
    models: Sequence[str] = ()
    columns: Mapping[str, Sequence[str]] = field(default_factory=dict)
    last_dataset: str | None = None
    last_model: str | None = None

    @property
    def all_datasets(self) -> list[str]:
        return list(dict.fromkeys([*self.datasets, *DATASETS]))


@dataclass
class ParsedCommand:
    """What a command was understood to mean; ``to_dict()`` is the dry-run JSON."""

    intent: str
    arguments: dict[str, Any]
    command: str
    missing: list[str]
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Exactly ``{"intent", "arguments", "command", "missing"}``."""
        return {
            "intent": self.intent,
            "arguments": dict(self.arguments),
            "command": self.command,
            "missing": list(self.missing),
        }


@dataclass
class _Token:
    text: str
    low: str
    quoted: bool = False
    used: bool = False


_TOKEN = re.compile(r'"([^"]*)"|\'([^\']*)\'|(\S+)')
_TRAILING = ",;:!?)("


def tokenize(text: str) -> list[_Token]:
    """Split on spaces, keeping quoted strings whole and original case (paths, column names)."""
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(text):
        quoted = match.group(3) is None
        raw = match.group(1) if match.group(1) is not None else match.group(2)
        if raw is None:
            raw = match.group(3).strip(_TRAILING)
            if raw.endswith(".") and not _is_path(raw[:-1] + "x"):
                raw = raw.rstrip(".")
            if raw.startswith("--") and "=" in raw:
                flag, _, value = raw.partition("=")
                tokens.append(_Token(flag, flag.lower()))
                raw = value
        if raw == "" and not quoted:
            continue
        tokens.append(_Token(raw, raw.lower(), quoted))
    return tokens


def _is_path(text: str) -> bool:
    low = text.lower()
    return low.endswith(FILE_SUFFIXES) or "/" in text or "\\" in text


class _Reader:
    """The words of one command, with a mark on each word an argument has used."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens

    def free(self) -> list[int]:
        return [i for i, t in enumerate(self.tokens) if not t.used]

    def use(self, *indexes: int) -> None:
        for i in indexes:
            self.tokens[i].used = True

    def low(self, i: int) -> str:
        return self.tokens[i].low if 0 <= i < len(self.tokens) else ""

    def find_phrase(self, table: Mapping[tuple[str, ...], str]) -> tuple[int, int, str] | None:
        """The first phrase of ``table`` among unused words (longest phrase wins at a place)."""
        longest = sorted(table, key=len, reverse=True)
        for i in range(len(self.tokens)):
            for phrase in longest:
                span = range(i, i + len(phrase))
                if span.stop > len(self.tokens):
                    continue
                if all(
                    not self.tokens[k].used and self.tokens[k].low == w
                    for k, w in zip(span, phrase, strict=True)
                ):
                    return i, len(phrase), table[phrase]
        return None

    def next_word(self, i: int, skip: set[str] | None = None) -> int | None:
        """The index of the first unused, meaningful word after ``i``."""
        skip = skip if skip is not None else {"a", "an", "the", "my", "our", "column", "to"}
        for k in range(i + 1, len(self.tokens)):
            token = self.tokens[k]
            if token.used:
                continue
            if token.low in skip and not token.quoted:
                continue
            return k
        return None

    def leftovers(self) -> list[str]:
        return [t.text for t in self.tokens if not t.used and t.low not in FILLER]


def parse(text: str, context: ParseContext | None = None) -> ParsedCommand:
    """Understand one plain-language command; never raises on odd input (intent "unknown")."""
    context = context or ParseContext()
    reader = _Reader(tokenize(text))
    notes: list[str] = []
    intent = _intent(reader, context, notes)
    arguments: dict[str, Any]
    missing: list[str]
    handler = _HANDLERS.get(intent)
    if handler is None:
        arguments, missing = {}, []
    else:
        arguments, missing = handler(reader, context, notes)
    ignored = reader.leftovers()
    if intent == "unknown":
        words = [t.text for t in reader.tokens if not t.used and t.low not in ARTICLES]
        arguments = {"not_understood": words}
        ignored = []
        if any(t.low in DESTRUCTIVE_WORDS for t in reader.tokens):
            notes.append("the assistant never deletes anything; nothing was changed")
        notes.append(
            "no command word found (train, clean, upload, deploy, promote, rollback, "
            "monitor, download, list, compare, help; or an on-call question)"
        )
    return ParsedCommand(
        intent=intent,
        arguments=arguments,
        command=render_command(intent, arguments),
        missing=missing,
        ignored=ignored,
        notes=notes,
    )


def _intent(reader: _Reader, context: ParseContext, notes: list[str]) -> str:
    if not reader.tokens:
        return "help"
    if _oncall_question(reader) is not None:
        return "oncall"
    found = reader.find_phrase(PHRASES)
    candidates: list[tuple[int, int, str]] = []
    if found:
        candidates.append(found)
    for i, token in enumerate(reader.tokens):
        if token.low in VERBS and not token.quoted:
            candidates.append((i, 1, VERBS[token.low]))
    if candidates:
        # "show"/"what" are weak: "show me how to deploy" is a deploy; a real verb wins.
        strong = [c for c in candidates if c[2] != "list"] or candidates
        if any(c[2] == "list" for c in candidates) and strong is not candidates:
            first_list = min(c[0] for c in candidates if c[2] == "list")
            if first_list < min(c[0] for c in strong) and _noun_list(reader) is not None:
                strong = [c for c in candidates if c[2] == "list"]
        i, n, intent = min(strong, key=lambda c: c[0])
        reader.use(*range(i, i + n))
        if intent == "monitor" and any(reader.low(k) in MONITOR_OFF for k in range(i, i + n)):
            reader.tokens[i].low = "unmonitor"
        return intent
    known = {n.lower() for n in [*context.all_datasets, *context.models]}
    for i, token in enumerate(reader.tokens[:4]):
        if token.quoted or token.low in known or _is_path(token.text):
            continue
        verb = closest(token.low, [v for v in VERBS if v not in NO_FUZZY and len(v) > 4])
        if verb is not None:
            reader.use(i)
            notes.append(f"read {token.text!r} as {verb!r}")
            return VERBS[verb]
    if any(t.low in DESTRUCTIVE_WORDS for t in reader.tokens):
        return "unknown"
    if _noun_list(reader) is not None:
        return "list"
    return "unknown"


def _oncall_question(reader: _Reader) -> str | None:
    """Which on-call question the words ask, if any: only when no command verb is there
    ("show" and "what" are questions too), so "monitor it for drift" stays a command."""
    words = {t.low for t in reader.tokens if not t.quoted}
    if any(VERBS.get(w, "list") not in {"list", "help"} for w in words):
        return None
    for needed, question in ONCALL_QUESTIONS:
        if needed <= words:
            return question
    return None


def _noun_list(reader: _Reader) -> str | None:
    for i in reader.free():
        if reader.low(i) in NOUN_LISTS:
            return NOUN_LISTS[reader.low(i)]
    return None


# ----------------------------------------------------------------------------- slot readers


def _environment(reader: _Reader, notes: list[str]) -> str | None:
    for i in reader.free():
        low = reader.low(i)
        env = ENV_WORDS.get(low)
        if env is None and not reader.tokens[i].quoted:
            guess = closest(low, ["staging", "production"])
            env = guess
            if guess:
                notes.append(f"read {reader.tokens[i].text!r} as {guess!r}")
        if env is not None:
            reader.use(i)
            return env
    return None


_VERSION_INLINE = re.compile(r"^v(?:er(?:sion)?)?(\d+)$")


def _version(reader: _Reader) -> int | None:
    for i in reader.free():
        low = reader.low(i)
        match = _VERSION_INLINE.match(low)
        if match:
            reader.use(i)
            return int(match.group(1))
        if low in {"version", "ver", "--version", "revision"}:
            k = reader.next_word(i)
            if k is not None and reader.low(k).lstrip("#").isdigit():
                reader.use(i, k)
                return int(reader.low(k).lstrip("#"))
    return None


def _numbers(reader: _Reader) -> list[int]:
    found: list[int] = []
    for i in reader.free():
        for part in re.split(r"[,&+/]|\band\b", reader.low(i)):
            part = part.strip().lstrip("#")
            if part.isdigit():
                found.append(int(part))
                reader.use(i)
    return found


def _path(reader: _Reader) -> str | None:
    for i in reader.free():
        token = reader.tokens[i]
        if _is_path(token.text):
            reader.use(i)
            return token.text
    return None


def _after(reader: _Reader, markers: set[str]) -> str | None:
    for i in reader.free():
        if reader.low(i) in markers:
            k = reader.next_word(i)
            if k is not None:
                reader.use(i, k)
                return reader.tokens[k].text
    return None


def _it(reader: _Reader) -> bool:
    for i in reader.free():
        if reader.low(i) in IT_WORDS:
            reader.use(i)
            return True
    return False


def _known_name(reader: _Reader, names: Sequence[str], notes: list[str]) -> str | None:
    """The first word that names (or nearly names) one of ``names``."""
    for i in reader.free():
        token = reader.tokens[i]
        if token.low in FILLER and token.low not in {n.lower() for n in names}:
            continue
        match = closest(token.text, names)
        if match is not None:
            reader.use(i)
            if match.lower() != token.low:
                notes.append(f"read {token.text!r} as {match!r}")
            return match
    return None


def _model(reader: _Reader, context: ParseContext, notes: list[str]) -> str | None:
    name = _known_name(reader, context.models, notes)
    if name is not None:
        return name
    for i in reader.free():
        token = reader.tokens[i]
        if token.low in FILLER or token.low in ENV_WORDS or token.low in NOUN_LISTS:
            continue
        prefixed = [m for m in context.models if m.lower().startswith(token.low + "-")]
        reader.use(i)
        if len(prefixed) == 1:
            notes.append(f"took {token.text!r} to mean model {prefixed[0]!r}")
            return prefixed[0]
        return token.text
    if context.last_model and _it(reader):
        notes.append(f"'it' is model {context.last_model!r}, the last one of this session")
        return context.last_model
    return _the_model(reader, context, notes)


def _the_model(reader: _Reader, context: ParseContext, notes: list[str]) -> str | None:
    """What "the model" or "my model" means: see :func:`_the`."""
    return _the(reader, {"model", "models"}, context.last_model, context.models, notes)


def _the(
    reader: _Reader, nouns: set[str], last: str | None, names: Sequence[str], notes: list[str]
) -> str | None:
    """What "the model" / "my dataset" means: the session's last one, or the only one there is;
    None (so the executor asks which) when several exist and the session names none. Words
    that only say which state of it ("the processed dataset") may stand between."""
    for i in reader.free():
        if reader.low(i) not in nouns:
            continue
        start = i - 1
        while start > 0 and reader.low(start) in STATE_WORDS:
            start -= 1
        if start < 0 or reader.low(start) not in THE_MODEL or reader.tokens[start].used:
            continue
        if last:
            chosen, why = last, "the last one of this session"
        elif len(names) == 1:
            chosen, why = names[0], "the only one"
        else:
            return None
        words = " ".join(t.text for t in reader.tokens[start : i + 1])
        reader.use(*range(start, i + 1))
        notes.append(f"'{words}' is {chosen!r}, {why}")
        return chosen
    return None


def _dataset(
    reader: _Reader, context: ParseContext, notes: list[str], *, any_word: bool = False
) -> str | None:
    """A known dataset, "it", the word after "on"/"from" …, or (``any_word``) the first free
    word, so "clean sales2" names an unknown dataset the executor can say is missing."""
    name = _known_name(reader, context.all_datasets, notes)
    if name is not None:
        return name
    if context.last_dataset and _it(reader):
        notes.append(f"'it' is dataset {context.last_dataset!r}, the last one of this session")
        return context.last_dataset
    nouns = {"dataset", "data", "datasets", "table", "file"}
    the = _the(reader, nouns, context.last_dataset, context.datasets, notes)
    if the is not None:
        return the
    for i in reader.free():
        if reader.low(i) in DATASET_MARKERS:
            k = reader.next_word(i)
            if k is not None and reader.low(k) not in FILLER:
                reader.use(i, k)
                return reader.tokens[k].text
    if any_word:
        for i in reader.free():
            token = reader.tokens[i]
            if token.low not in FILLER and not token.low.isdigit() and token.low not in ARTICLES:
                reader.use(i)
                return token.text
    return None


def _algorithm(reader: _Reader) -> str | None:
    found = reader.find_phrase(ALGORITHM_PHRASES)
    if found is None:
        return None
    i, n, algorithm = found
    reader.use(*range(i, i + n))
    return algorithm


def _task(reader: _Reader, notes: list[str]) -> str | None:
    for i in reader.free():
        low = reader.low(i)
        task = TASK_WORDS.get(low)
        if task is None and not reader.tokens[i].quoted:
            guess = closest(low, [w for w in TASK_WORDS if len(w) > 6])
            if guess is not None:
                notes.append(f"read {reader.tokens[i].text!r} as {guess!r}")
                task = TASK_WORDS[guess]
        if task is not None:
            reader.use(i)
            return task
    return None


def _target(
    reader: _Reader, context: ParseContext, dataset: str | None, notes: list[str]
) -> str | None:
    columns = list(context.columns.get(dataset or "", ()))
    raw: str | None = None
    for markers in (TARGET_MARKERS | {"--target"}, TARGET_MARKERS_WEAK):
        for i in reader.free():
            if reader.low(i) in markers:
                k = reader.next_word(i, skip={"a", "an", "the", "column", "value", "of", "to"})
                if k is None:
                    continue
                if markers is TARGET_MARKERS_WEAK and not (
                    _is_column(reader.tokens[k].text, columns)
                    if columns
                    else reader.low(k) not in FILLER and reader.low(k) not in TASK_WORDS
                ):
                    continue
                reader.use(i, k)
                raw = reader.tokens[k].text
                break
        if raw is not None:
            break
    if raw is None and columns:
        for i in reader.free():
            if _is_column(reader.tokens[i].text, columns) and reader.low(i) not in FILLER:
                reader.use(i)
                raw = reader.tokens[i].text
                break
    if raw is None:
        return None
    match = closest(raw, columns) if columns else None
    if match is not None and match != raw:
        notes.append(f"read {raw!r} as column {match!r}")
    return match or raw


def _is_column(word: str, columns: Sequence[str]) -> bool:
    return bool(columns) and closest(word, columns) is not None


def _format(reader: _Reader) -> str | None:
    for i in reader.free():
        if reader.low(i) in {"csv", "parquet", "pq"}:
            reader.use(i)
            return "parquet" if reader.low(i) == "pq" else reader.low(i)
    return None


# ----------------------------------------------------------------------------- intents


Slots = tuple[dict[str, Any], list[str]]


def _upload(reader: _Reader, context: ParseContext, notes: list[str]) -> Slots:
    path = _path(reader)
    name = _after(reader, NAME_MARKERS)
    arguments: dict[str, Any] = {}
    if path is not None:
        arguments["path"] = path
        arguments["name"] = safe_name(name or PurePath(path).stem)
        return arguments, []
    example = _known_name(reader, list(DATASETS), notes)
    if example is not None:
        arguments["example"] = example
        arguments["name"] = safe_name(name or example)
        return arguments, []
    if name is not None:
        arguments["name"] = safe_name(name)
    return arguments, ["path"]


def _clean(reader: _Reader, context: ParseContext, notes: list[str]) -> Slots:
    drop_non_numeric = _non_numeric(reader)
    version = _version(reader)
    keep = _after(reader, {"keep", "keeping", "target", "predict", "predicting", "except"})
    dataset = _dataset(reader, context, notes, any_word=True)
    arguments: dict[str, Any] = {"dataset": dataset}
    if version is not None:
        arguments["version"] = version
    if drop_non_numeric:
        arguments["drop_non_numeric"] = True
    if keep is not None:
        columns = context.columns.get(dataset or "", ())
        arguments["keep"] = closest(keep, columns) or keep if columns else keep
    return arguments, [] if dataset else ["dataset"]


def _non_numeric(reader: _Reader) -> bool:
    """ "drop non-numeric columns" (also "non numeric"): the words are used, True if asked."""
    for i in reader.free():
        low = reader.low(i)
        span = [i]
        if low == "non" and reader.low(i + 1) in {"numeric", "numerical"}:
            span.append(i + 1)
        elif low not in NON_NUMERIC:
            continue
        before = [k for k in (i - 1,) if reader.low(k) in DESTRUCTIVE_WORDS | {"without"}]
        after = [k for k in (span[-1] + 1,) if reader.low(k) in {"columns", "column", "features"}]
        reader.use(*before, *span, *after)
        return True
    return False


def _train(reader: _Reader, context: ParseContext, notes: list[str]) -> Slots:
    algorithm = _algorithm(reader)
    task = _task(reader, notes)
    if task is None and algorithm == "logistic_regression":
        task = "classification"
    elif task is None and algorithm == "linear_regression":
        task = "regression"
    name = _after(reader, NAME_MARKERS)
    version = _version(reader)
    path = _path(reader)
    dataset = _dataset(reader, context, notes)
    if dataset is None and path is not None:
        dataset = path
    target = _target(reader, context, dataset, notes)
    arguments: dict[str, Any] = {"dataset": dataset, "target": target}
    if version is not None:
        arguments["dataset_version"] = version
    if task is not None:
        arguments["task"] = task
    if algorithm is not None:
        arguments["algorithm"] = algorithm
    if name is None and dataset is not None and target is not None:
        name = f"{PurePath(dataset).stem}-{target}"
    if name is not None:
        arguments["model"] = safe_name(name)
    missing = [key for key in ("dataset", "target") if arguments[key] is None]
    return arguments, missing


def _deploy(reader: _Reader, context: ParseContext, notes: list[str]) -> Slots:
    environment = _environment(reader, notes)
    version = _version(reader)
    model = _model(reader, context, notes)
    arguments: dict[str, Any] = {"model": model, "environment": environment or "staging"}
    if environment is None:
        notes.append("no environment named: staging")
    if version is not None:
        arguments["version"] = version
    return arguments, [] if model else ["model"]


def _promote(reader: _Reader, context: ParseContext, notes: list[str]) -> Slots:
    _environment(reader, notes)  # "to production" is what promote means; any other is noise
    version = _version(reader)
    model = _model(reader, context, notes)
    arguments: dict[str, Any] = {"model": model, "environment": "production"}
    if version is not None:
        arguments["version"] = version
    return arguments, [] if model else ["model"]


def _rollback(reader: _Reader, context: ParseContext, notes: list[str]) -> Slots:
    environment = _environment(reader, notes)
    version = _version(reader)
    model = _model(reader, context, notes)
    arguments: dict[str, Any] = {"model": model, "environment": environment or "production"}
    if version is not None:
        arguments["version"] = version
    return arguments, [] if model else ["model"]


def _monitor(reader: _Reader, context: ParseContext, notes: list[str]) -> Slots:
    enabled = not any(t.used and t.low in MONITOR_OFF for t in reader.tokens)
    for i in reader.free():
        if reader.low(i) in MONITOR_OFF:
            reader.use(i)
            enabled = False
    for i in reader.free():
        if reader.low(i) in MONITOR_ASPECTS:
            reader.use(i)
    model = _model(reader, context, notes)
    return {"model": model, "enabled": enabled}, [] if model else ["model"]


def _download(reader: _Reader, context: ParseContext, notes: list[str]) -> Slots:
    cleaned = False
    for i in reader.free():
        if reader.low(i) in CLEANED_WORDS:
            reader.use(i)  # "the processed dataset": _the still sees it between the two
            cleaned = True
    version = _version(reader)
    output = _path(reader)
    fmt = _format(reader)
    if fmt is None and output is not None:
        fmt = "parquet" if output.lower().endswith((".parquet", ".pq")) else "csv"
    dataset = _dataset(reader, context, notes, any_word=True)
    arguments: dict[str, Any] = {"dataset": dataset, "format": fmt or "csv"}
    if version is not None:
        arguments["version"] = version
    elif cleaned:
        arguments["cleaned"] = True
    if output is not None:
        arguments["output"] = output
    return arguments, [] if dataset else ["dataset"]


def _list(reader: _Reader, context: ParseContext, notes: list[str]) -> Slots:
    what = _noun_list(reader)
    for i in reader.free():
        if reader.low(i) in NOUN_LISTS:
            reader.use(i)
    if what is None:
        return {"what": None}, ["what"]
    arguments: dict[str, Any] = {"what": what}
    if what == "experiments":
        model = _known_name(reader, context.models, notes)
        if model is not None:
            arguments["model"] = model
    return arguments, []


def _compare(reader: _Reader, context: ParseContext, notes: list[str]) -> Slots:
    runs = _numbers(reader)
    for i in reader.free():
        if reader.low(i) in {"runs", "run", "experiments", "experiment", "with", "and"}:
            reader.use(i)
    return {"runs": runs[:2]}, [] if len(runs) >= 2 else ["runs"]


def _oncall(reader: _Reader, context: ParseContext, notes: list[str]) -> Slots:
    question = _oncall_question(reader)
    words = {w for needed, q in ONCALL_QUESTIONS if q == question for w in needed}
    arguments: dict[str, Any] = {"question": question}
    if question == "incidents":
        arguments["state"] = "open"  # closed ones are history: "show open incidents" is usual
    if question == "activity":
        arguments["since"] = "today"
    for i in reader.free():
        if reader.low(i) in words | ONCALL_GLUE:
            reader.use(i)
    model = _model(reader, context, notes)
    if model is None:
        # the word left is the model asked about, even one that is filler elsewhere ("demo")
        left = [i for i in reader.free() if reader.low(i) not in ARTICLES]
        if left:
            reader.use(left[0])
            model = reader.tokens[left[0]].text
    if model is None and question in ONE_MODEL_QUESTIONS:
        # these questions are about one model: the session's, or the only one
        if context.last_model:
            model = context.last_model
            notes.append(f"about model {model!r}, the last one of this session")
        elif len(context.models) == 1:
            model = context.models[0]
            notes.append(f"about model {model!r}, the only model")
    if model is not None:
        arguments["model"] = model
    missing = ["model"] if model is None and question in ONE_MODEL_QUESTIONS else []
    return arguments, missing


def _help(reader: _Reader, context: ParseContext, notes: list[str]) -> Slots:
    for i in reader.free():
        reader.use(i)
    return {}, []


_HANDLERS = {
    "upload": _upload,
    "clean": _clean,
    "train": _train,
    "deploy": _deploy,
    "promote": _promote,
    "rollback": _rollback,
    "monitor": _monitor,
    "download": _download,
    "list": _list,
    "compare": _compare,
    "oncall": _oncall,
    "help": _help,
}


def safe_name(name: str) -> str:
    """A name the registry accepts: letters, digits, ``_ . -``; lower case for readability."""
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]+", "-", name.strip()).strip("-.").lower()
    return cleaned or "dataset"


# ----------------------------------------------------------------------------- CLI rendering


def _q(value: Any, placeholder: str) -> str:
    return f"<{placeholder}>" if value is None else shlex.quote(str(value))


def render_command(intent: str, arguments: Mapping[str, Any]) -> str:
    """The ``mlwarden`` command line doing the same thing (``<slot>`` marks what is missing)."""
    a = arguments
    if intent == "upload":
        if "example" in a:
            example, name = _q(a["example"], "example"), _q(a["name"], "name")
            return f"mlwarden datasets example {example} --name {name}"
        name = f" --name {_q(a['name'], 'name')}" if a.get("name") else ""
        return f"mlwarden datasets upload {_q(a.get('path'), 'path')}{name}"
    if intent == "clean":
        parts = [f"mlwarden datasets clean {_q(a.get('dataset'), 'dataset')}"]
        if a.get("version") is not None:
            parts.append(f"--version {a['version']}")
        if a.get("keep"):
            parts.append(f"--keep {_q(a['keep'], 'column')}")
        if a.get("drop_non_numeric"):
            parts.append("--drop-non-numeric")
        return " ".join(parts)
    if intent == "train":
        parts = [
            "mlwarden train",
            f"--dataset {_q(a.get('dataset'), 'dataset')}",
            f"--target {_q(a.get('target'), 'target')}",
        ]
        if a.get("dataset_version") is not None:
            parts.append(f"--dataset-version {a['dataset_version']}")
        if a.get("task"):
            parts.append(f"--task {a['task']}")
        if a.get("algorithm"):
            parts.append(f"--algorithm {a['algorithm']}")
        if a.get("model"):
            parts.append(f"--model {_q(a['model'], 'model')}")
        return " ".join(parts)
    if intent in {"deploy", "rollback"}:
        parts = [f"mlwarden {intent} {_q(a.get('model'), 'model')} --env {a.get('environment')}"]
        if a.get("version") is not None:
            parts.append(f"--version {a['version']}")
        return " ".join(parts)
    if intent == "promote":
        version = f" --version {a['version']}" if a.get("version") is not None else ""
        return f"mlwarden promote {_q(a.get('model'), 'model')}{version}"
    if intent == "monitor":
        off = "" if a.get("enabled", True) else " --off"
        return f"mlwarden monitor {_q(a.get('model'), 'model')}{off}"
    if intent == "download":
        parts = [f"mlwarden datasets download {_q(a.get('dataset'), 'dataset')}"]
        if a.get("version") is not None:
            parts.append(f"--version {a['version']}")
        elif a.get("cleaned"):
            parts.append("--cleaned")
        parts.append(f"--format {a.get('format', 'csv')}")
        if a.get("output"):
            parts.append(f"--output {_q(a['output'], 'path')}")
        return " ".join(parts)
    if intent == "list":
        what = a.get("what")
        if what == "experiments":
            flag = f" --model {_q(a['model'], 'model')}" if a.get("model") else ""
            return f"mlwarden experiments list{flag}"
        if what == "datasets":
            return "mlwarden datasets list"
        if what == "models":
            return "mlwarden experiments models"
        return "mlwarden experiments list"
    if intent == "compare":
        runs = list(a.get("runs") or [])
        first = runs[0] if runs else None
        second = runs[1] if len(runs) > 1 else None
        return f"mlwarden experiments compare {_q(first, 'run')} {_q(second, 'run')}"
    if intent == "oncall":
        model = a.get("model")
        if a.get("question") in {"drifting", "drift_report"}:
            return f"mlwarden signals {_q(model, 'model')} --signal drift"
        if a.get("question") == "activity":
            return "mlwarden actions list" + (f" --model {_q(model, 'model')}" if model else "")
        parts = ["mlwarden incidents"]
        if model:
            parts.append(f"--model {_q(model, 'model')}")
        if a.get("state"):
            parts.append(f"--state {a['state']}")
        return " ".join(parts)
    if intent == "help":
        return "mlwarden ask help"
    return ""


HELP_TEXT = """\
Things you can ask (typos and paraphrases are fine; "it" is the last dataset or model):
  upload titanic.csv as titanic        load the titanic example
  clean titanic                        (shows the plan, then writes a new dataset version)
  train a classifier on titanic to predict Survived
  train a regression model on titanic predicting Fare with random forest
  deploy titanic-survived to staging   promote it to production   roll back titanic-survived
  monitor titanic-survived for drift   stop monitoring titanic-survived
  download the cleaned titanic as parquet
  show experiments   list datasets   list models   compare runs 3 and 4   help
On call (answered from what the agent stored):
  why is demo failing?   show open incidents   is titanic drifting?   show the drift report
  what did the agent do today?
Production changes need confirmation (--yes). Add --dry-run --json to see what was understood.
Files by path (upload x.csv, download ... to y.csv) are for the command line; through the API
or the dashboard, upload the file itself and download from the link the answer gives."""
