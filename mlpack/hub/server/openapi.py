"""The OpenAPI 3 document of the hub's REST API (served at ``/docs.json``)."""

from __future__ import annotations

from typing import Any

from ... import __version__

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF + name}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _errors(*codes: str) -> dict[str, Any]:
    text = {
        "400": "Malformed request (names the problem)",
        "401": "Missing, invalid or revoked token",
        "403": "The token is read-only",
        "404": "Not on the hub",
        "409": "Conflict: already on the hub, blobs or models missing, or in use",
        "413": "Too large",
        "422": "Uploaded bytes do not hash to the claimed sha256",
        "503": "Retry shortly (see Retry-After)",
    }
    return {code: _json(text[code], "Error") for code in codes}


_KIND = {"name": "kind", "in": "path", "required": True, "schema": {"type": "string", "enum": ["models", "bundles"]}}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "description": "A version, a unique version prefix, or `latest`.",
    "schema": {"type": "string"},
}
_SHA = {"name": "sha256", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}
_BYTES = {"description": "The bytes", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "What went wrong and what to do next."},
            "details": {"description": "Field errors."},
            "missing": {"type": "array", "items": {"type": "string"}, "description": "Blobs the hub lacks (409)."},
            "missing_models": {"type": "array", "items": {"type": "string"}, "description": "Models a bundle needs (409)."},
            "used_by": {"type": "array", "items": {"type": "string"}, "description": "Bundles using a model (409)."},
            "error_id": {"type": "string"},
        },
    },
    "FileRef": {
        "type": "object",
        "required": ["sha256", "size"],
        "properties": {"sha256": {"type": "string"}, "size": {"type": "integer", "minimum": 0}},
    },
    "Summary": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "tag": {"type": "string"},
            "size": {"type": "integer"},
            "creation_time": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "pushed_by": {"type": "string"},
            "pushed_at": {"type": "string"},
        },
    },
    "Listing": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref("Summary")},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    },
    "Versions": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "latest": {"type": "string"},
            "versions": {"type": "array", "items": _ref("Summary")},
            "total": {"type": "integer"},
        },
    },
    "Entry": {
        "allOf": [
            _ref("Summary"),
            {
                "type": "object",
                "properties": {
                    "manifest": {"type": "object", "description": "The parsed model.yaml or bundle.yaml."},
                    "manifest_sha256": {"type": "string"},
                    "manifest_name": {"type": "string"},
                    "files": {"type": "object", "additionalProperties": _ref("FileRef")},
                    "used_by": {"type": "array", "items": {"type": "string"}, "description": "Models: bundles using it."},
                    "models": {"type": "array", "items": {"type": "string"}, "description": "Bundles: models it uses."},
                },
            },
        ]
    },
    "Push": {
        "type": "object",
        "required": ["manifest_text", "files"],
        "properties": {
            "manifest_text": {
                "type": "string",
                "description": "The exact text of model.yaml / bundle.yaml (also uploaded as a blob).",
            },
            "files": {"type": "object", "additionalProperties": _ref("FileRef")},
        },
    },
    "Deleted": {
        "type": "object",
        "properties": {
            "deleted": {"type": "string"},
            "kind": {"type": "string"},
            "used_by": {"type": "array", "items": {"type": "string"}},
            "blobs_collected": {"type": "integer"},
        },
    },
    "Blob": {
        "type": "object",
        "properties": {"sha256": {"type": "string"}, "size": {"type": "integer"}, "created": {"type": "boolean"}},
    },
    "Token": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "read_only": {"type": "boolean"},
            "created_at": {"type": "string"},
            "last_used_at": {"type": "string", "nullable": True},
        },
    },
}


def _probe(summary: str) -> dict[str, Any]:
    ok = {"description": summary, "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {"get": {"tags": ["Infrastructure"], "summary": summary, "security": [], "responses": {"200": ok}}}


def openapi_spec() -> dict[str, Any]:
    entry_params = [_KIND, _NAME, _VERSION]
    paths: dict[str, Any] = {
        "/api/v1/whoami": {
            "get": {
                "tags": ["Tokens"],
                "summary": "The calling token",
                "responses": {"200": _json("Token", "Token"), **_errors("401")},
            }
        },
        "/api/v1/blobs/missing": {
            "post": {
                "tags": ["Blobs"],
                "summary": "Which of these blobs the hub lacks",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["sha256"],
                                "properties": {"sha256": {"type": "array", "maxItems": 10000, "items": {"type": "string"}}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The missing digests",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"missing": {"type": "array", "items": {"type": "string"}}},
                                }
                            }
                        },
                    },
                    **_errors("400", "401"),
                },
            }
        },
        "/api/v1/blobs/{sha256}": {
            "parameters": [_SHA],
            "get": {"tags": ["Blobs"], "summary": "Download a blob", "responses": {"200": _BYTES, **_errors("401", "404")}},
            "put": {
                "tags": ["Blobs"],
                "summary": "Upload a blob (streamed; refused unless it hashes to sha256)",
                "requestBody": {
                    "required": True,
                    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                },
                "responses": {
                    "200": _json("Already on the hub (nothing stored)", "Blob"),
                    "201": _json("Stored", "Blob"),
                    **_errors("400", "401", "403", "413", "422", "503"),
                },
            },
        },
        "/api/v1/{kind}": {
            "parameters": [_KIND],
            "get": {
                "tags": ["Entries"],
                "summary": "List and search models or bundles",
                "parameters": [
                    {"name": "q", "in": "query", "description": "Name substring", "schema": {"type": "string"}},
                    {
                        "name": "label",
                        "in": "query",
                        "description": "key=value; repeat to require several",
                        "schema": {"type": "array", "items": {"type": "string"}},
                        "style": "form",
                        "explode": True,
                    },
                    {
                        "name": "sort",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["created", "size", "name", "pushed"], "default": "created"},
                    },
                    {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["desc", "asc"], "default": "desc"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                ],
                "responses": {"200": _json("One page", "Listing"), **_errors("400", "401", "404")},
            },
        },
        "/api/v1/{kind}/{name}": {
            "parameters": [_KIND, _NAME],
            "get": {
                "tags": ["Entries"],
                "summary": "Versions of one name, newest first",
                "responses": {"200": _json("Versions", "Versions"), **_errors("400", "401", "404")},
            },
        },
        "/api/v1/{kind}/{name}/{version}": {
            "parameters": entry_params,
            "get": {
                "tags": ["Entries"],
                "summary": "One version: manifest, files, who pushed it",
                "responses": {"200": _json("The entry", "Entry"), **_errors("400", "401", "404")},
            },
            "put": {
                "tags": ["Entries"],
                "summary": "Commit a version whose blobs are all uploaded (atomic; tags are immutable)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Push")}}},
                "responses": {"201": _json("Committed", "Entry"), **_errors("400", "401", "403", "409", "413")},
            },
            "delete": {
                "tags": ["Entries"],
                "summary": "Delete a version (a model a hub bundle uses needs force=true)",
                "parameters": [{"name": "force", "in": "query", "schema": {"type": "boolean", "default": False}}],
                "responses": {"200": _json("Deleted", "Deleted"), **_errors("400", "401", "403", "404", "409")},
            },
        },
        "/api/v1/{kind}/{name}/{version}/files/{relpath}": {
            "parameters": [*entry_params, {"name": "relpath", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {
                "tags": ["Entries"],
                "summary": "Download one file of a version",
                "responses": {"200": _BYTES, **_errors("401", "404")},
            },
        },
        "/livez": _probe("Liveness"),
        "/readyz": _probe("Readiness: database and storage reachable (503 otherwise)"),
        "/metrics": _probe("Prometheus metrics"),
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "mlpack hub",
            "version": __version__,
            "description": "Central repository of mlpack models and bundles. "
            "Every /api/v1 call needs `Authorization: Bearer TOKEN`.",
        },
        "tags": [{"name": "Entries"}, {"name": "Blobs"}, {"name": "Tokens"}, {"name": "Infrastructure"}],
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
