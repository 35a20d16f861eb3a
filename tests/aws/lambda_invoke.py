"""Run Lambda invocations on moto's no-docker backend with our real handler code.

moto's ``LambdaSimpleBackend.invoke`` returns canned answers. `patched()` replaces it: the
function's deployed zip is unpacked (once per code digest), its handler module imported,
the function's environment applied (set-and-keep under a lock: values are never removed
while another invocation may read them) and the handler called in this process. A raised
exception becomes Lambda's error payload with ``x-amz-function-error: Unhandled``, which
Step Functions turns into a task failure named by ``errorType``.

The function's configured ``Timeout`` is enforced as Lambda enforces it: the handler runs
in its own thread with a context whose ``get_remaining_time_in_millis()`` counts down from
the timeout, and an invocation still running at the timeout is answered with Lambda's
error (``errorType`` ``Sandbox.Timedout``, "Task timed out after N.00 seconds",
``x-amz-function-error: Unhandled``), whatever the handler does later. Lambda freezes the
sandbox at that moment; here the abandoned thread gets an exception at its next Python
instruction (`_stop`), so it cannot finish the work it was doing (what a C call in
progress writes may still land, as a request already sent to S3 does on AWS).

When the handler's package is already imported (the tests share the process with
imgflow), the shipped file must be byte-identical to the imported one: the zip is still
what runs. In a moto server process the unpacked zip is added last to sys.path (its compiled
wheels are for the function's python3.12, not this interpreter); the same byte check holds.

`install()` also makes moto read bucket policies the way AWS does for requests over TLS:
moto ignores conditions, so the deployer's "deny when aws:SecureTransport is false"
statement would deny every object request.

The same patch is applied inside a moto server process by `moto_server.py`.

Isolated mode (``IMGFLOW_TEST_LAMBDA_PYTHON`` names an interpreter of the function's
runtime, such as python3.12): each invocation runs in a subprocess instead, as Lambda runs
it: the import path is the unzipped zip plus a folder holding only boto3 and its
dependencies (``-I -S``: no site-packages, no PYTHONPATH), the code and library folders are
mounted read-only (a private mount namespace, ``unshare``; root only) and only a fresh
temporary folder is writable (TMPDIR, HOME). A module missing from the zip fails there.
Handlers then reach moto through AWS_ENDPOINT_URL, so this mode needs a moto server.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.s3.models import FakeBucket
from support.scratch import lambda_code_folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.aws_roles import forget_credentials, role_credentials

Handler = Callable[[dict[str, Any], object], Any]

_lock = threading.Lock()
_roots: dict[str, Path] = {}
_counts: dict[str, int] = {}
_work = lambda_code_folder()
_original = LambdaSimpleBackend.invoke
_original_permission = FakeBucket.get_permission
_INSECURE = {"Bool": {"aws:SecureTransport": "false"}}


def invocation_counts() -> dict[str, int]:
    """Function name -> invocations since the patch was installed (or reset)."""
    with _lock:
        return dict(_counts)


def reset_counts() -> None:
    """Forget the invocation counts."""
    with _lock:
        _counts.clear()


ISOLATED_PYTHON = "IMGFLOW_TEST_LAMBDA_PYTHON"
RUNTIME_DISTRIBUTIONS = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "python-dateutil",
    "six",
    "urllib3",
)
_BOOT = """
import json, sys, time, traceback
code, libs, handler, timeout = sys.argv[1:5]
deadline = time.monotonic() + float(timeout)
sys.path[:0] = [code, libs]
module_name, func = handler.rsplit(".", 1)
event = json.load(sys.stdin)
class Context:
    def get_remaining_time_in_millis(self):
        return max(0, int((deadline - time.monotonic()) * 1000))
try:
    import importlib
    result = getattr(importlib.import_module(module_name), func)(event, Context())
    answer = {"ok": result}
except Exception as exc:
    answer = {"error": {"errorMessage": str(exc), "errorType": type(exc).__name__,
                        "stackTrace": traceback.format_exception(exc)[-5:]}}
sys.stdout.write("\\n@@imgflow-result@@" + json.dumps(answer))
"""


def runtime_libraries() -> Path:
    """A folder with only boto3 and what it needs: what the Lambda runtime adds to the zip."""
    folder = _work / "runtime-libs"
    if folder.exists():
        return folder
    staging = _work / "runtime-libs.tmp"
    for name in RUNTIME_DISTRIBUTIONS:
        dist = importlib.metadata.distribution(name)
        for entry in dist.files or ():
            relative = entry.as_posix()
            if relative.startswith("..") or ".dist-info" in relative or "__pycache__" in relative:
                continue
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(str(dist.locate_file(entry)), target)
    staging.rename(folder)
    return folder


def _run_isolated(
    python: str,
    root: Path,
    handler: str,
    env: dict[str, str],
    event: bytes,
    timeout: float = 300.0,
) -> Any:
    """Run `handler` from `root` in a subprocess under Lambda's conditions; its answer
    (Lambda's timeout error once it has run for `timeout` seconds)."""
    libs = runtime_libraries()
    with tempfile.TemporaryDirectory(prefix="imgflow-lambda-tmp-") as tmp:
        script = (
            'mount --bind -o ro "$1" "$1" && mount --bind -o ro "$2" "$2" && shift 2 && exec "$@"'
        )
        command = [
            "unshare",
            "--mount",
            "--",
            "sh",
            "-c",
            script,
            "sh",
            str(root),
            str(libs),
            python,
            "-I",
            "-S",
            "-c",
            _BOOT,
            str(root),
            str(libs),
            handler,
            str(timeout),
        ]
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TMPDIR": tmp,
            "HOME": tmp,
            "PYTHONDONTWRITEBYTECODE": "1",
            **env,
        }
        try:
            done = subprocess.run(
                command, cwd=root, env=full_env, input=event, capture_output=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {"error": _timed_out(timeout)}
    marker = b"\n@@imgflow-result@@"
    if marker not in done.stdout:
        detail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        return {"error": {"errorMessage": " | ".join(detail), "errorType": "Runtime.ExitError"}}
    return json.loads(done.stdout.rsplit(marker, 1)[1])


def _unpacked(code: bytes) -> Path:
    digest = hashlib.sha256(code).hexdigest()
    root = _roots.get(digest)
    if root is None:
        root = _work / digest[:16]
        zipfile.ZipFile(io.BytesIO(code)).extractall(root)
        _roots[digest] = root
    return root


def _load(root: Path, handler: str) -> Handler:
    module_name, func = handler.rsplit(".", 1)
    top = module_name.split(".", 1)[0]
    if top not in sys.modules and str(root) not in sys.path:
        # Last on the path: the zip's compiled wheels are built for the function's runtime
        # (python3.12), not for this interpreter; isolated mode runs the zip alone.
        sys.path.append(str(root))
    module = importlib.import_module(module_name)
    shipped = root / (module_name.replace(".", "/") + ".py")
    loaded = Path(str(module.__file__))
    if loaded != shipped and loaded.read_bytes() != shipped.read_bytes():
        raise RuntimeError(f"{module_name}: the imported code differs from the deployed zip")
    found: Handler = getattr(module, func)
    return found


class TimedOut(BaseException):
    """Raised in a handler thread that outlived its function's timeout."""


class Context:
    """The parts of Lambda's context object the handlers use."""

    def __init__(self, fn: Any, deadline: float) -> None:
        self.function_name = fn.function_name
        self.memory_limit_in_mb = int(getattr(fn, "memory_size", 1024) or 1024)
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before Lambda stops the invocation."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _stop(thread: threading.Thread) -> None:
    """Raise TimedOut in `thread` at its next Python instruction."""
    ident = ctypes.c_ulong(thread.ident or 0)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ident, ctypes.py_object(TimedOut))


def _timed_out(timeout: float) -> dict[str, str]:
    """Lambda's answer to an invocation that ran for its whole timeout."""
    return {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"Task timed out after {timeout:.2f} seconds",
    }


def _call_with_timeout(handler: Handler, event: dict[str, Any], fn: Any) -> dict[str, Any]:
    """``{"ok": result}``, ``{"error": payload}`` or Lambda's timeout error."""
    timeout = float(fn.timeout)
    context = Context(fn, time.monotonic() + timeout)
    answer: dict[str, Any] = {}

    def run() -> None:
        try:
            answer["ok"] = handler(event, context)
        except TimedOut:
            pass
        except Exception as exc:
            answer["error"] = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "stackTrace": traceback.format_exception(exc)[-5:],
            }

    thread = threading.Thread(target=run, name=f"lambda-{fn.function_name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        _stop(thread)
        return {"error": _timed_out(timeout)}
    return answer


def _invoke(
    self: LambdaSimpleBackend,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: Any,
) -> bytes:
    fn = self.get_function(function_name, qualifier)
    isolated = os.environ.get(ISOLATED_PYTHON)
    with _lock:
        _counts[fn.function_name] = _counts.get(fn.function_name, 0) + 1
        root = _unpacked(fn.code_bytes)
        env = {
            "AWS_REGION": fn.region,
            "AWS_DEFAULT_REGION": fn.region,
            # Lambda hands the function its role's credentials (see support/aws_roles.py).
            **role_credentials(fn.account_id, fn.region, fn.role),
            **fn.environment_vars,
        }
        if os.environ.get("MOTO_PORT"):
            env.setdefault("AWS_ENDPOINT_URL", f"http://127.0.0.1:{os.environ['MOTO_PORT']}")
        if not isolated:
            handler = _load(root, fn.handler)
            os.environ.update({k: str(v) for k, v in env.items()})
    if isolated:
        event_bytes = body if isinstance(body, bytes) else (body or "{}").encode()
        answer = _run_isolated(
            isolated,
            root,
            fn.handler,
            {k: str(v) for k, v in env.items()},
            event_bytes or b"{}",
            float(fn.timeout),
        )
        if "error" in answer:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(answer["error"]).encode()
        return json.dumps(answer["ok"]).encode()
    event = json.loads(body) if body else {}
    outcome = _call_with_timeout(handler, event, fn)
    if "error" in outcome:
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(outcome["error"]).encode()
    return json.dumps(outcome["ok"]).encode()


def _permission_over_tls(self: FakeBucket, action: str, resource: str) -> Any:
    if self.policy is None:
        return _original_permission(self, action, resource)
    policy = json.loads(self.policy)
    kept = [s for s in policy.get("Statement", []) if s.get("Condition") != _INSECURE]
    from moto.iam.access_control import IAMPolicy, PermissionResult

    if not kept:
        return PermissionResult.NEUTRAL
    return IAMPolicy(json.dumps({**policy, "Statement": kept})).is_action_permitted(
        action, resource
    )


def install() -> None:
    """Patch moto's no-docker Lambda backend to run our handlers; TLS-aware bucket policies."""
    forget_credentials()
    LambdaSimpleBackend.invoke = _invoke  # type: ignore[method-assign,assignment]
    FakeBucket.get_permission = _permission_over_tls  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore moto's canned answers and its bucket policy check."""
    LambdaSimpleBackend.invoke = _original  # type: ignore[method-assign]
    FakeBucket.get_permission = _original_permission  # type: ignore[method-assign]


@contextlib.contextmanager
def patched() -> Iterator[None]:
    """The patch, for the duration of the block."""
    install()
    try:
        yield
    finally:
        uninstall()
