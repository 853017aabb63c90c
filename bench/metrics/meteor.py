"""METEOR 1.5 (the jar shipped in pycocoevalcap) as a Java process, one per bench process, reused across scoring calls.

The process runs in `-stdio -l en -norm` mode, like pycocoevalcap's Meteor class (E2E) and like file mode with
`-r N` (WebNLG, DART: same value): SCORE gives an item's sufficient statistics, EVAL
aggregates any list of them into the corpus score. The statistics are what `per_item["METEOR"]` stores.

Starting the jar costs about 5 s of loading tables, half of a mini E2E run, while SCORE and EVAL are stateless; so
scoring goes through one shared jar (`shared_meteor()`), started at first use, restarted if it stopped, and shut down
when the bench process exits. It holds about 1 GB of memory meanwhile. A scoring call that fails or is interrupted
stops it, so a half-read answer is never read by the next call.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import IO

from bench.errors import BenchError
from bench.metrics.java import COCO_MISSING, coco_dir

METEOR_ARGS = ("-", "-", "-stdio", "-l", "en", "-norm")


def _stop(process: subprocess.Popen[bytes], stderr: IO[bytes]) -> None:
    """Close stdin (the jar then exits), wait briefly, kill if it hangs; idempotent."""
    if process.stdin and not process.stdin.closed:
        with contextlib.suppress(OSError):
            process.stdin.close()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for stream in (process.stdout, stderr):
        if stream and not stream.closed:
            stream.close()


def _field(text: str) -> str:
    """What the stdio protocol cannot carry: '|||' separates fields, a newline ends the command."""
    return text.replace("|||", "").replace("\r", " ").replace("\n", " ")


def _hypothesis(text: str) -> str:
    """pycocoevalcap's Meteor._stat: '|||' removed, then double spaces once replaced by one."""
    return _field(text).replace("  ", " ")


class MeteorProcess:
    """A running METEOR 1.5 jar. Use as a context manager; close() also runs when the object is collected.

    Same command and protocol as pycocoevalcap's Meteor class, which is not used itself: it is closed only by
    __del__, never reads the stderr pipe it opens, and hides the per-item statistics.
    """

    def __init__(self, memory: str = "2G") -> None:
        folder = coco_dir()
        if folder is None:
            raise BenchError(COCO_MISSING)
        jar = folder / "meteor" / "meteor-1.5.jar"
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close() / the finalizer)
        self._process = subprocess.Popen(["java", f"-Xmx{memory}", "-jar", str(jar), *METEOR_ARGS],
                                         cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr)
        self._finalizer = weakref.finalize(self, _stop, self._process, self._stderr)

    def _ask(self, command: str, lines: int) -> list[str]:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(f"{command}\n".encode())
            stdin.flush()
            answers = [stdout.readline().decode().strip() for _ in range(lines)]
        except OSError:
            answers = [""]
        if not all(answers):
            detail = self._stderr_tail()
            self.close()
            raise BenchError(f"METEOR 1.5 (Java) stopped without an answer. {detail}".strip(),
                             hint="Check that `java -version` works and that 2 GB of Java heap is available.")
        return answers

    def _stderr_tail(self) -> str:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._stderr.closed:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-500:].strip()

    def statistics(self, hypothesis: str, references: Sequence[str]) -> list[float]:
        """One item's METEOR sufficient statistics (the jar's SCORE line)."""
        line = " ||| ".join(("SCORE", " ||| ".join(_field(r) for r in references), _hypothesis(hypothesis)))
        return [float(x) for x in self._ask(line, 1)[0].split()]

    def aggregate(self, stats: Sequence[Sequence[float]]) -> tuple[float, list[float]]:
        """(corpus METEOR, per-item METEOR), both 0-1, from per-item statistics (the jar's EVAL command)."""
        if not stats:
            raise ValueError("METEOR of zero items")
        line = "EVAL ||| " + " ||| ".join(" ".join(repr(x) for x in item) for item in stats)
        answers = self._ask(line, len(stats) + 1)
        return float(answers[-1]), [float(a) for a in answers[:-1]]

    def alive(self) -> bool:
        return self._finalizer.alive and self._process.poll() is None

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> MeteorProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if error is not None and self._process.poll() is None:
            self._process.kill()  # no need to wait for the jar to finish loading its tables
        self.close()


_shared: list[MeteorProcess] = []  # at most one: this process's jar


@contextlib.contextmanager
def shared_meteor() -> Iterator[MeteorProcess]:
    """This process's METEOR jar, started if there is none or it stopped; stopped if the block fails."""
    if not (_shared and _shared[0].alive()):
        _shared[:] = [MeteorProcess()]
    meteor = _shared[0]
    try:
        yield meteor
    except BaseException:
        meteor._process.kill()  # an answer may be half read: the next call starts a fresh jar
        meteor.close()
        raise


def stop_shared_meteor() -> None:
    """Shut the shared jar down now (it otherwise stops when this process exits)."""
    while _shared:
        _shared.pop().close()


def corpus_meteor_from_stats(stats: Sequence[Sequence[float]]) -> float:
    """Corpus METEOR 1.5 (0-100) from per-item statistics, through the shared jar."""
    with shared_meteor() as meteor:
        return 100.0 * meteor.aggregate(stats)[0]
