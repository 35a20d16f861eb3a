"""The OpenAPI 3.1 description of `imgflow serve`, served at ``/openapi.json``.

Hand-written to say exactly what the handlers do (the fuzz test in tests/serve checks the
running service against it): every status each endpoint can answer, and the shape of each
body, refusals included.
"""

from __future__ import annotations

from typing import Any

from imgflow.engine.failures import FailureKind
from imgflow.engine.records import Outcome
from imgflow.serve.app import MAX_CONCURRENCY, MAX_LIST
from imgflow.serve.queue import STATES

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, retry: bool = False) -> dict[str, Any]:
    response = _json(_ref("Error"), description)
    if retry:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        }
    return response


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


_COMMON = {
    "403": _error("The Host or Origin header is not allowed (DNS rebinding, cross-site)."),
    "408": _error("The request did not arrive whole within serve.read_timeout."),
    "503": _error("Over serve.max_connections open connections.", retry=True),
}
_AUTH = {
    "401": _error("No or wrong bearer token."),
}

_URL = {
    "type": "string",
    "pattern": "^\\s*[Hh][Tt][Tt][Pp][Ss]?://[^/?#\\s]+/",
    "maxLength": 2048,
    "description": "A full http:// or https:// URL with a host and a path.",
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": {"type": "string", "description": "One line."}},
    },
    "Job": {
        "type": "object",
        "description": "The original pipeline's job body (baseUrl with resourcePaths), or a"
        " list of full URLs from any number of hosts (urls) instead: one or the other.",
        "additionalProperties": False,
        "oneOf": [
            {"required": ["baseUrl", "resourcePaths"], "not": {"required": ["urls"]}},
            {
                "required": ["urls"],
                "not": {"anyOf": [{"required": ["baseUrl"]}, {"required": ["resourcePaths"]}]},
            },
        ],
        "properties": {
            "baseUrl": {
                "type": "string",
                "pattern": "^\\s*[Hh][Tt][Tt][Pp][Ss]?://",
                "description": "http:// or https:// URL with a host, no query or fragment,"
                " that the paths are relative to.",
            },
            "resourcePaths": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string"},
                "description": "Paths relative to baseUrl (no .., no full URLs).",
            },
            "urls": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "description": "A full http(s) URL (a string with a host and a path), or"
                    " a UrlEntry. Any other entry does not refuse the job: it fails alone"
                    " (outcome failed, failureKind invalid-url, named by its index: urls[3])"
                    " and the others run."
                },
                "description": "Full http(s) URLs, from any hosts (instead of baseUrl and"
                " resourcePaths); --concurrency (lambdaConcur) then holds per host.",
            },
            "lambdaConcur": {
                "description": "Requests in flight per batch (per host with urls): an integer"
                " or a string of digits (default: job.concurrency).",
                "oneOf": [
                    {"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY},
                    {"type": "string", "pattern": "^\\s*[0-9]+\\s*$"},
                    {"type": "null"},
                ],
            },
        },
    },
    "UrlEntry": {
        "type": "object",
        "description": "A URL with its metadata: every other field is kept with the image.",
        "required": ["url"],
        "properties": {"url": _URL},
    },
    "Accepted": {
        "type": "object",
        "required": ["run", "state"],
        "additionalProperties": False,
        "properties": {"run": {"type": "string"}, "state": {"const": "queued"}},
    },
    "Summary": {
        "type": "object",
        "required": ["total", "stored", "skipped", "failed"],
        "additionalProperties": False,
        "properties": {
            k: {"type": "integer", "minimum": 0}
            for k in ("total", "stored", "skipped", "failed", "updated", "unchanged")
        },
    },
    "RunHead": {
        "type": "object",
        "required": [
            "run",
            "backend",
            "summary",
            "state",
            "baseUrl",
            "lambdaConcur",
            "duplicates",
            "submittedAt",
            "startedAt",
            "finishedAt",
            "attempts",
            "localRun",
            "error",
        ],
        "properties": {
            "run": {"type": "string"},
            "backend": {"const": "local"},
            "summary": _ref("Summary"),
            "state": {"enum": list(STATES)},
            "baseUrl": _nullable("string", description="null for a job of urls"),
            "lambdaConcur": {"type": "integer", "minimum": 1},
            "duplicates": {"type": "integer", "minimum": 0},
            "submittedAt": {"type": "string", "format": "date-time"},
            "startedAt": _nullable("string", format="date-time"),
            "finishedAt": _nullable("string", format="date-time"),
            "attempts": {"type": "integer", "minimum": 0},
            "localRun": _nullable(
                "string", description="The local run of the latest attempt (imgflow status)."
            ),
            "error": _nullable("string"),
            "hostNotes": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "description": "A finished run's per-host lines: a paused host, DNS failures.",
            },
        },
    },
    "Record": {
        "type": "object",
        "required": ["url", "path", "outcome"],
        "properties": {
            "url": {"type": "string"},
            "path": {"type": "string"},
            "outcome": {"enum": [o.value for o in Outcome]},
            "statusCode": _nullable("integer"),
            "key": _nullable("string"),
            "bytes": _nullable("integer"),
            "sha256": _nullable("string"),
            "contentType": _nullable("string"),
            "error": _nullable("string"),
            "attempts": {"type": "integer", "minimum": 0},
            "etag": _nullable("string"),
            "lastModified": _nullable("string"),
            "failureKind": {"enum": [*(k.value for k in FailureKind), None]},
            "width": {"type": "integer", "minimum": 1, "description": "From the header."},
            "height": {"type": "integer", "minimum": 1},
            "meta": {"type": "object", "description": "The source's metadata, if any."},
        },
    },
    "Run": {
        "allOf": [
            _ref("RunHead"),
            {
                "type": "object",
                "required": ["results"],
                "properties": {"results": {"type": "array", "items": _ref("Record")}},
            },
        ]
    },
    "RunList": {
        "type": "object",
        "required": ["runs"],
        "additionalProperties": False,
        "properties": {"runs": {"type": "array", "items": _ref("RunHead")}},
    },
}

_RUN_ID = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The id POST answered with.",
}


def describe(route: str, auth: bool) -> dict[str, Any]:
    """The OpenAPI document of a service taking jobs at `route`, with or without a token."""
    guarded = {**(_AUTH if auth else {}), **_COMMON}
    run_link = {
        "operationId": "getRun",
        "parameters": {"run_id": "$response.body#/run"},
    }
    paths: dict[str, Any] = {
        route: {
            "post": {
                "operationId": "submitJob",
                "summary": "Queue a job (the original pipeline's POST body).",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref("Job"),
                            "example": {
                                "resourcePaths": ["cn/cn.gif", "zz/zz.gif"],
                                "baseUrl": "https://www.fluentpython.com/data/flags",
                                "lambdaConcur": 2,
                            },
                        }
                    },
                },
                "responses": {
                    "202": {
                        **_json(_ref("Accepted"), "Stored in imgflow.db; it runs in turn."),
                        "headers": {
                            "Location": {
                                "description": "/runs/<run>",
                                "schema": {"type": "string"},
                            }
                        },
                        "links": {
                            "GetRun": run_link,
                            "CancelRun": {**run_link, "operationId": "cancelRun"},
                            "GetFailures": {**run_link, "operationId": "getFailures"},
                        },
                    },
                    "400": _error("Not a valid job body (the line names the problem)."),
                    "413": _error("Body over serve.max_body_bytes; the connection is closed."),
                    "415": _error("Content-Type is not application/json (UTF-8)."),
                    **guarded,
                    "503": _error(
                        "Queue full (serve.max_queued), shutting down, or too many connections.",
                        retry=True,
                    ),
                },
            }
        },
        "/runs": {
            "get": {
                "operationId": "listRuns",
                "summary": "The service's runs, newest first (queued ones in run order).",
                "parameters": [
                    {"name": "state", "in": "query", "schema": {"enum": list(STATES)}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST},
                    },
                ],
                "responses": {
                    "200": _json(_ref("RunList"), "Runs without their results."),
                    "400": _error("A bad state or limit."),
                    **guarded,
                },
            }
        },
        "/runs/{run_id}": {
            "parameters": [_RUN_ID],
            "get": {
                "operationId": "getRun",
                "summary": "A run: state, counts (live while it runs) and results so far.",
                "parameters": [
                    {
                        "name": "results",
                        "in": "query",
                        "schema": {"type": "boolean"},
                        "description": "false leaves the per-image results out.",
                    }
                ],
                "responses": {
                    "200": _json(
                        {"anyOf": [_ref("Run"), _ref("RunHead")]},
                        "The run (with results unless results=false).",
                    ),
                    "400": _error("A bad results parameter."),
                    "404": _error("No such run."),
                    **guarded,
                },
            },
            "delete": {
                "operationId": "cancelRun",
                "summary": "Cancel a queued or running job (finished images are kept).",
                "responses": {
                    "200": _json(_ref("RunHead"), "Cancelled."),
                    "202": _json(_ref("RunHead"), "Stopping; poll GET /runs/<id>."),
                    "404": _error("No such run."),
                    "409": _error("The run already ended."),
                    **guarded,
                },
            },
        },
        "/runs/{run_id}/failures": {
            "parameters": [_RUN_ID],
            "get": {
                "operationId": "getFailures",
                "summary": "The failure messages: the original pipeline's SNS JSON array.",
                "responses": {
                    "200": _json({"type": "array", "items": {"type": "string"}}, "Messages."),
                    "404": _error("No such run."),
                    **guarded,
                },
            },
        },
        "/runs/{run_id}/report": {
            "parameters": [_RUN_ID],
            "get": {
                "operationId": "getReport",
                "summary": "The run's HTML report (imgflow report), once it has started.",
                "responses": {
                    "200": {
                        "description": "One self-contained HTML page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "404": _error("No such run, or it has not started."),
                    **guarded,
                },
            },
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This description (no token needed).",
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_COMMON,
                },
            }
        },
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "imgflow serve",
            "version": "1",
            "description": "Start local imgflow runs with the original pipeline's POST body.",
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
    if auth:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document
