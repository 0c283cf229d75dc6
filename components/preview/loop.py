"""The event loops one offline render runs on (components/preview/render.py), and their clean-up.

The SDK runs the program as tasks on an event loop and each call to the mock monitor in an
executor thread with its own loop. :class:`RenderLoop` gives a render a fresh loop and executor,
and at its end cancels what is still pending, closes every loop it made and sets the caller's
loop setting back exactly: a render that failed leaks nothing into the next one, and nothing is
left for the garbage collector to finalize at a random moment (which would print to stderr and
make the same input give different bytes).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import pickle
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

_LOG = logging.getLogger("components.preview.render")  # the render's logger: what it does not report


class _RpcThreads(ThreadPoolExecutor):
    """The render loop's default executor, where the SDK runs each call to the mock monitor.

    The monitor needs an event loop in the thread that serves the call and makes one when the
    thread has none (``_ensure_event_loop`` in pulumi/runtime/mocks.py). Each worker thread gets
    its loop here, up front, and the render keeps them all to close them at its end: left to the
    garbage collector, a loop may be finalized after its self-pipe socket, at a random moment,
    which prints "Exception ignored in BaseEventLoop.__del__ … Invalid file descriptor: -1" to
    stderr and makes the output differ from run to run.
    """

    def __init__(self, on_exception: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]) -> None:
        self.loops: list[asyncio.AbstractEventLoop] = []
        self._on_exception = on_exception
        super().__init__(thread_name_prefix="render-rpc", initializer=self._give_loop)

    def _give_loop(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._on_exception)
        self.loops.append(loop)  # list.append is atomic: workers start concurrently
        asyncio.set_event_loop(loop)


class RenderLoop:
    """The event loop one render runs on, and every loop its RPC threads made: all closed at the
    end, and the caller's own loop, if it had one, set again."""

    def __init__(self) -> None:
        # What exists before the render (the SDKs' modules, the caller's objects) is set aside
        # for the collection at the end, which then visits only what the render made: a full
        # collection over the imported SDKs costs about a quarter of a dev render. Given back
        # (gc.unfreeze) right after it, so the caller's garbage is collected as usual later.
        gc.freeze()
        self.previous = _LoopSetting()
        self.loop = asyncio.new_event_loop()
        # The SDK's own log tasks fail with the program and are never awaited: reported by
        # Task.__del__ when collected, they would print the failure again (a traceback, on stderr,
        # at random). The failure itself reaches the caller as the program's exception.
        self.loop.set_exception_handler(_unreported)
        self.threads = _RpcThreads(_unreported)
        self.loop.set_default_executor(self.threads)

    def __enter__(self) -> asyncio.AbstractEventLoop:
        asyncio.set_event_loop(self.loop)
        return self.loop

    def __exit__(self, *_: object) -> None:
        try:
            _finish(self.loop)
            self.threads.shutdown(wait=True)  # no thread runs one of its loops any more
            for loop in self.threads.loops:
                _finish(loop)
                loop.close()
            # Closed here, not left to the garbage collector: a loop finalized in the middle of
            # other work (say, compiling a module) can break the interpreter's recursion bookkeeping.
            self.loop.close()
        finally:
            self.previous.restore()
            # Run the finalizers of this render's futures now (a failed render leaves some whose
            # exception nobody retrieved): run by the collector inside ast.parse they trip CPython
            # 3.11's "AST constructor recursion depth mismatch".
            gc.collect()
            gc.unfreeze()
            unwrap_pickler()


class _LoopSetting:
    """This thread's event loop setting, read without changing it and given back exactly.

    ``asyncio.get_event_loop()`` cannot be used to read it: in the main thread it creates a loop
    when none is set (which nobody would close). ``set_event_loop(None)`` cannot give "none set"
    back: it also marks the loop as set, after which ``get_event_loop()`` raises instead of
    creating one, as the SDK's ``Output.from_input`` outside a program relies on. So both are
    read from, and written back to, the default policy's per-thread record.
    """

    def __init__(self) -> None:
        self._local = getattr(asyncio.get_event_loop_policy(), "_local", None)
        self._loop = getattr(self._local, "_loop", None)
        self._set_called = getattr(self._local, "_set_called", None)

    def restore(self) -> None:
        asyncio.set_event_loop(self._loop)
        if self._local is not None and self._set_called is not None:
            self._local._set_called = self._set_called  # noqa: SLF001 - see the class docstring


def _finish(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and await what is still pending on ``loop``, and close its async generators."""
    loop.run_until_complete(_cancel_pending())


async def _cancel_pending() -> None:
    pending = asyncio.all_tasks() - {asyncio.current_task()}
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


def _unreported(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    _LOG.debug("render: %s", context.get("message"), exc_info=context.get("exception"))


def unwrap_pickler() -> None:
    """Undo what each dynamic resource's serialization leaves on ``pickle._Pickler``.

    ``pulumi.dynamic.serialize_provider`` (SDK 3.272) wraps ``pickle._Pickler._batch_setitems``
    in a sorting function each time it runs and never puts the original back (it restores only
    the name ``pickle.Pickler``), so every dynamic resource a process declares adds one level of
    wrapping. A ``pulumi up`` declares a handful; a process that renders many sites (the tests,
    the benchmark) reaches Python's recursion limit. The original is the innermost function of
    the chain; the next serialization wraps it once again, as intended.
    """
    method = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]  # noqa: SLF001 - the SDK patches this private method
    while method.__qualname__ != "_Pickler._batch_setitems" and method.__closure__:
        inner = [c.cell_contents for c in method.__closure__ if callable(c.cell_contents)]
        if not inner:
            return
        method = inner[0]
    if method.__qualname__ == "_Pickler._batch_setitems":
        pickle._Pickler._batch_setitems = method  # type: ignore[attr-defined]  # noqa: SLF001
