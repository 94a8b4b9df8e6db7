"""The OpenAPI document of the server, and the pages that show it.

Most handlers read their body by hand (``json_body``: NaN, ``1e999`` and deep nesting refused
before pydantic sees anything), so FastAPI cannot infer the body. Each such route declares it
with ``openapi_extra=json_body_doc(Model)`` (or one of the other helpers here), and
:func:`describe` adds the models to the document's components, the bearer-token security
scheme, and the one error shape every failure has (``{"error": ..., "detail": {...}}``), so that
clients can be generated from the document and a fuzzer reaches the real handlers.

The document and its pages need a viewer token while tokens are required, unless
``settings.docs_public`` opens them. The pages load Swagger UI and ReDoc from the installed
``fastapi-offline`` package under ``/docs/assets`` (FastAPI's defaults load them, a favicon and
Google fonts from CDNs, which leaves ``/docs`` blank on a machine without internet access). Its
Swagger UI is a 5.x release, the first to render OpenAPI 3.1, the version FastAPI writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from mlwarden.api.deps import ServerState, viewer_unless_public

__all__ = [
    "BEARER",
    "DOCS_ASSETS",
    "DOCS_ASSETS_URL",
    "ERROR_SCHEMA",
    "body_doc",
    "describe",
    "errors_doc",
    "install_docs",
    "json_body_doc",
    "model_ref",
]

OPENAPI_URL = "/openapi.json"
# swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js and favicon.png, as released
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_ASSETS_URL = "/docs/assets"
BEARER = "bearerAuth"
_REF = "#/components/schemas/{model}"

# Every error of the API: the handlers of app.py render all of them this way.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong, for a person."},
        "detail": {
            "type": "object",
            "description": "Machine-readable specifics, e.g. `errors`: the bad fields.",
        },
    },
}

# The models named by json_body_doc, added to the document's components by describe()
_body_models: dict[str, type[BaseModel]] = {}


def body_doc(
    content: dict[str, dict[str, Any]], *, required: bool = True, description: str = ""
) -> dict[str, Any]:
    """``openapi_extra`` declaring a request body of the given media types and schemas."""
    body: dict[str, Any] = {
        "required": required,
        "content": {media: {"schema": schema} for media, schema in content.items()},
    }
    if description:
        body["description"] = description
    return {"requestBody": body}


def model_ref(model: type[BaseModel]) -> dict[str, Any]:
    """A reference to ``model``'s schema, which :func:`describe` adds to the components."""
    _body_models[model.__name__] = model
    return {"$ref": _REF.format(model=model.__name__)}


def json_body_doc(
    model: type[BaseModel], *, required: bool = True, description: str = ""
) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON body validated by ``model`` in the handler."""
    return body_doc(
        {"application/json": model_ref(model)}, required=required, description=description
    )


def errors_doc(alternative: dict[str, Any], description: str) -> dict[int | str, Any]:
    """``responses`` of an operation whose refusals may also have another shape (given as the
    route's ``responses``, so FastAPI does not add its own 422)."""
    schema = {"anyOf": [{"$ref": _REF.format(model="Error")}, alternative]}
    answer = {"description": description, "content": {"application/json": {"schema": schema}}}
    return {"422": answer, "4XX": answer}


def _add_models(components: dict[str, Any]) -> None:
    schemas = components.setdefault("schemas", {})
    for name, model in _body_models.items():
        schema = model.model_json_schema(ref_template=_REF, mode="validation")
        # nested models become components of their own, as FastAPI does with its bodies
        for nested, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(nested, definition)
        schemas[name] = schema


def _add_errors(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    schemas["Error"] = ERROR_SCHEMA
    # FastAPI documents its own 422 shape; ours replaces it (app.py renders every 422)
    schemas["HTTPValidationError"] = {"$ref": _REF.format(model="Error")}
    error = {
        "description": "The request was refused: see `error` for why.",
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["responses"].setdefault("4XX", error)
            operation["responses"].setdefault("5XX", error)


def _add_security(document: dict[str, Any], auth_required: bool) -> None:
    document["components"]["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API token (`mlwarden token create`), with the role the operation needs: "
                "viewer reads, operator changes deployments and sends predictions, admin "
                "registers models and manages tokens."
            ),
        }
    }
    # without auth (loopback only) every request acts as the local admin: a token is optional
    document["security"] = [{BEARER: []}] if auth_required else [{BEARER: []}, {}]
    document["paths"]["/health"]["get"]["security"] = []


def describe(app: FastAPI, auth_required: bool) -> dict[str, Any]:
    """The app's OpenAPI document with bodies, errors and security (built once, then cached)."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        _add_models(document.setdefault("components", {}))
        _add_errors(document)
        _add_security(document, auth_required)
        app.openapi_schema = document
    return app.openapi_schema


def install_docs(app: FastAPI) -> None:
    """``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc``, closed like the API."""

    async def guard(request: Request) -> ServerState:
        state: ServerState = request.app.state.mlwarden
        await viewer_unless_public(request, state, state.settings.docs_public)
        return state

    @app.get(OPENAPI_URL, include_in_schema=False)
    async def openapi_document(request: Request) -> JSONResponse:
        state = await guard(request)
        return JSONResponse(describe(request.app, state.auth_required))

    # Software anyone may download, as the dashboard's Plotly is: served without a token, so
    # the browser needs none for them (the page and the document stay closed).
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    favicon = f"{DOCS_ASSETS_URL}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        await guard(request)
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=favicon,
            # the default validator badge is an image from validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        await guard(request)
        return get_redoc_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} API",
            redoc_js_url=f"{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )
