"""The OpenAPI documentation of the service's routes: summaries, response models with the
documented error statuses, and request examples built from the served version's own
held-out rows, so every example succeeds when run from ``/docs`` (a test runs them all).
Read by ``serve.documented_app`` when FastAPI is first needed; imports no web framework."""

from typing import Any

from linreg_ops.config import MODEL_KINDS

__all__ = ["ERROR_STATUSES", "route_documentation"]

ERROR_STATUSES = {
    400: "malformed JSON, a body nested too deep, or an MLflow body without one known format",
    413: "the body exceeds max_body_bytes, or the batch max_batch rows",
    415: "a Content-Type other than application/json (or text/csv on /invocations)",
    422: "a row that is not valid: a missing or unknown feature, a value that is not a "
    "finite number, a model that is not published here",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    from linreg_ops.inference.serve import ErrorResponse

    return {
        status: {"model": ErrorResponse, "description": ERROR_STATUSES[status]}
        for status in statuses
    }


def _json_examples(examples: dict[str, Any]) -> dict[str, Any]:
    return {name: {"summary": name, "value": value} for name, value in examples.items()}


def route_documentation(path: str, example: tuple[list[str], list[list[float]]]) -> dict[str, Any]:
    """The ``add_api_route`` keyword arguments documenting ``path``; ``example`` is the
    served version's feature names and a few of its rows."""
    from linreg_ops.inference.serve import InvocationsResponse, PredictResponse

    names, rows = example
    records = [dict(zip(names, row, strict=True)) for row in rows]
    if path == "/predict":
        examples = {
            "float model, rows in feature order": {"instances": rows, "model": "float"},
            "rows as objects keyed by feature": {"instances": records},
            "quantized model": {"instances": rows, "model": "quantized"},
            "integer-only model (answers which rows it clipped)": {
                "instances": rows,
                "model": "integer",
            },
        }
        schema = {"$ref": "#/components/schemas/PredictRequest"}
        return {
            "summary": "Predict rows with the float, quantized or integer-only model",
            "response_model": PredictResponse,
            "responses": _errors(400, 413, 415, 422),
            "openapi_extra": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": schema, "examples": _json_examples(examples)}
                    },
                },
            },
        }
    if path == "/invocations":
        examples = {
            "dataframe_split (MLflow's client)": {
                "dataframe_split": {"columns": names, "data": rows}
            },
            "dataframe_records": {"dataframe_records": records},
            "instances": {"instances": rows},
            "inputs by column": {
                "inputs": {name: [row[i] for row in rows] for i, name in enumerate(names)}
            },
        }
        csv = "\n".join([",".join(names), *(",".join(map(repr, row)) for row in rows)]) + "\n"
        return {
            "summary": "MLflow's scoring protocol; ?model= picks the quantized or integer model",
            "response_model": InvocationsResponse,
            "responses": _errors(400, 413, 415, 422),
            "openapi_extra": {
                "parameters": [
                    {
                        "name": "model",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": list(MODEL_KINDS), "default": "float"},
                        "description": "the model to answer with (or the X-Model-Kind header); "
                        "the integer model's clipped rows are counted in X-Clipped-Rows",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"type": "object"},
                            "examples": _json_examples(examples),
                        },
                        "text/csv": {
                            "schema": {"type": "string"},
                            "examples": {"CSV with a header": {"value": csv}},
                        },
                    },
                },
            },
        }
    summaries = {
        "/health": "Liveness: the process answers",
        "/ready": "Readiness: the version's models are loaded and verified (503 while draining)",
        "/metadata": "Version, features, metrics, quantization and checksums",
        "/ping": "MLflow's liveness probe: 200 with a newline",
        "/version": "MLflow's version probe: linreg-ops's version as text",
        "/metrics": "Prometheus metrics, every worker's (text exposition format)",
        "/monitor": "Drift of the rows served so far from the training rows (every worker's; "
        "404 for a version without a drift profile)",
    }
    return {"summary": summaries[path]}
