"""The analyser: detectors run in a child process the pipeline can stop and replace.

A detector is third-party native code (onnxruntime, OCR, hashing) looking at
hostile pictures: it may crash the interpreter or never return. So detectors
never run in the process that serves the web app or holds a job's database
transaction. :class:`Analyser` starts one child process that loads every
detector once, sends it one stored image at a time and waits at most
``time_limit`` seconds; a child that dies or overruns is killed, the image is
reported as failed (with which check stopped, and why), and a fresh child takes
the next image.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import time
import traceback
import warnings
from collections.abc import Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from PIL import Image

from monitor.analysis.context import take_notes
from monitor.analysis.findings import Context, Finding, ImageInput, ModelMissing

log = logging.getLogger("monitor.analysis")

#: Seconds one image may take, every detector together, before its analyser is stopped.
TIME_LIMIT_SECONDS = 60.0
#: Seconds the child may take to import and load every model at start.
START_LIMIT_SECONDS = 120.0
#: The stored copy is ours (re-encoded JPEG, at most 1280 x 2400), so anything bigger is
#: not ours and is refused before decoding.
MAX_PIXELS = 1280 * 2400 * 2


class AnalyserError(RuntimeError):
    """The analyser could not start (a detector failed to load); the message says why."""


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """One stored image to analyse: where its file is, and what it belongs to."""

    media_id: int
    post_id: int
    position: int
    path: str
    #: The database whose rules and banks the detectors consult for this image.
    database_url: str


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What the detectors found in one image, and each check that failed, in words.

    A failure is never "nothing found": ``errors`` non-empty means the image was not
    fully checked, whatever ``findings`` holds.
    """

    findings: tuple[Finding, ...] = ()
    errors: tuple[str, ...] = ()
    #: What the detectors noted about the image that is no finding (its PDQ hash, the text
    #: read in it): stored with the outcome (:func:`monitor.analysis.context.store_notes`).
    notes: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


class Analyser:
    """One analyser child process, restarted after a crash or an overrun."""

    def __init__(
        self, *, targets: Mapping[str, str], time_limit: float = TIME_LIMIT_SECONDS
    ) -> None:
        self.targets = dict(targets)
        self.time_limit = time_limit
        self._context = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def start(self) -> None:
        """Start the child and wait until every detector has loaded its model.

        Raises :class:`ModelMissing` (naming the package) or :class:`AnalyserError`.
        """
        if self._process is not None and self._process.is_alive():
            return
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve,
            args=(child, self.targets),
            name="hashtag-monitor-analyser",
            daemon=True,
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        if not parent.poll(START_LIMIT_SECONDS):
            self.stop()
            raise AnalyserError(f"the analyser did not start within {START_LIMIT_SECONDS:.0f} s")
        try:
            kind, message = parent.recv()
        except (EOFError, OSError):
            self.stop()
            raise AnalyserError("the analyser stopped while loading its models") from None
        if kind == "missing":
            self.stop()
            raise ModelMissing(message)
        if kind != "ready":
            self.stop()
            raise AnalyserError(f"the analyser could not start: {message}")

    def analyse(self, job: Job) -> Outcome:
        """Every detector on one image, within the time limit; never raises for the image."""
        try:
            self.start()
        except (ModelMissing, AnalyserError) as exc:
            return Outcome(errors=(str(exc),))
        conn = self._conn
        assert conn is not None
        try:
            conn.send(job)
        except (OSError, ValueError):
            self.stop()
            return Outcome(errors=("the analyser had stopped; the image was not checked",))
        deadline = time.monotonic() + self.time_limit
        running = "the analysis"
        while True:
            remaining = deadline - time.monotonic()
            try:
                ready = remaining > 0 and conn.poll(remaining)
                if not ready:
                    self.stop()
                    return Outcome(
                        errors=(
                            f"{running} took longer than {self.time_limit:g} s on this image"
                            " and was stopped",
                        )
                    )
                kind, payload = conn.recv()
            except (EOFError, OSError):
                code = None
                if self._process is not None:
                    self._process.join(5)  # reaped, so its exit code is known
                    code = self._process.exitcode
                self.stop()
                return Outcome(errors=(f"{running} crashed on this image (exit code {code})",))
            if kind == "running":
                running = f"the {payload} check"
                continue
            findings, errors, notes = payload
            return Outcome(tuple(findings), tuple(errors), notes)

    def stop(self) -> None:
        """Stop the child now (a later :meth:`analyse` starts a fresh one)."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None and process.is_alive():
            process.kill()
        if process is not None:
            process.join(5)

    def __enter__(self) -> Analyser:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# --- the child process ---------------------------------------------------------------


def _serve(conn: Connection, targets: dict[str, str]) -> None:
    """The child's loop: load every detector, then analyse each job sent, until EOF."""
    from monitor.analysis.detectors import load_detectors
    from monitor.db import create_db_engine  # noqa: F401  imported before "ready", not per image

    try:
        detectors = load_detectors(targets)
    except ModelMissing as exc:
        conn.send(("missing", str(exc)))
        return
    except Exception as exc:  # noqa: BLE001  any failure to load is reported, not raised
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    contexts: dict[str, _Contexts] = {}
    conn.send(("ready", None))
    try:
        _loop(conn, detectors, contexts)
    except (BrokenPipeError, EOFError, OSError):
        return  # the parent is gone (stopped, or killed): nobody waits for an answer


def _loop(conn: Connection, detectors: list[Any], contexts: dict[str, _Contexts]) -> None:
    while True:
        try:
            job: Job = conn.recv()
        except (EOFError, OSError):
            return
        findings: list[Finding] = []
        errors: list[str] = []
        try:
            image = _open(Path(job.path))
        except _Unreadable as exc:
            conn.send(("done", ([], [str(exc)], None)))
            continue
        item = ImageInput(
            image=image, position=job.position, media_id=job.media_id, post_id=job.post_id
        )
        context = contexts.setdefault(job.database_url, _Contexts(job.database_url)).get()
        if context is None:
            conn.send(
                (
                    "done",
                    ([], ["the rules and hash banks could not be read from the database"], None),
                )
            )
            continue
        for detector in detectors:
            conn.send(("running", detector.name))
            try:
                found = detector.analyse(item, context)
                if not all(isinstance(finding, Finding) for finding in found):
                    raise TypeError("the detector returned something that is not a Finding")
                findings.extend(found)
            except Exception as exc:  # noqa: BLE001  one check failing is reported, the others run
                log.warning("the %s check failed: %s", detector.name, traceback.format_exc())
                errors.append(
                    f"the {detector.name} check failed: {type(exc).__name__}: {exc}"[:500]
                )
        # The context outlives the image: its notes go back with its findings.
        conn.send(("done", (findings, errors, take_notes(context, job.media_id))))


class _Unreadable(Exception):
    pass


def _open(path: Path) -> Image.Image:
    """Our stored copy, decoded and upright, or _Unreadable saying why."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path, formats=("JPEG",))
            if image.width * image.height > MAX_PIXELS:
                raise _Unreadable(f"the stored copy is {image.width} x {image.height} pixels")
            image.load()
    except FileNotFoundError:
        raise _Unreadable("the stored copy is missing from MEDIA_DIR") from None
    except _Unreadable:
        raise
    except Exception as exc:  # noqa: BLE001  a damaged file is reported in words
        raise _Unreadable(f"the stored copy could not be read ({type(exc).__name__})") from None
    return image.convert("RGB")


class _Contexts:
    """The detectors' context for one image: the text rules compiled again when older than
    allowed, the hash banks and never-again policy read as they are now."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._engine: Any = None
        self._context: Context | None = None
        self._built = float("-inf")

    def get(self) -> Context | None:
        """The current context; None if none could ever be built (never "no rules")."""
        from sqlmodel import Session

        from monitor.analysis.context import CONTEXT_MAX_AGE_SECONDS, build_context
        from monitor.db import create_db_engine

        fresh = time.monotonic() - self._built < CONTEXT_MAX_AGE_SECONDS
        try:
            if self._engine is None:
                self._engine = create_db_engine(self.database_url)
            with Session(self._engine) as session:
                context = build_context(session, text_rules_of=self._context if fresh else None)
        except Exception as exc:  # noqa: BLE001  the last good context stays in use
            log.warning("could not build the detectors' context: %s", exc)
            return self._context
        if not fresh:
            self._built = time.monotonic()
        self._context = context
        return context
