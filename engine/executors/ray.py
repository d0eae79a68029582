"""The ``ray`` executor: each selected client's turn runs as a Ray task, on this machine or a
cluster, and comes back as a state dict and payload to the same round loop. Strategies do not
change: the task calls the same :func:`engine.core.client.run_client` as every other executor.

Options (``executor_options``):

- ``ray_address``: ``"local"`` (start Ray in this process, default), ``"auto"`` (join the cluster
  this machine belongs to) or ``"ray://host:port"`` (Ray Client).
- ``num_cpus`` per client task (default 1); ``num_gpus`` per task for clients on ``cuda`` devices
  (default 1; fractions share a GPU); ``memory`` requests are derived from the model size.
- ``max_retries`` (default 1): a task whose worker dies is retried that many times, then the
  client is recorded as dropped for the round and the run continues.
- ``init_options``: extra keyword arguments for ``ray.init`` (e.g. ``{"num_cpus": 2}``).

Each client's data goes to the object store once per run; the strategy goes once per round,
without its server-side callables (client hooks only need ``params`` and the message).
Cancelling the run cancels the outstanding tasks.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.core.client import ClientEnv, ClientJob, run_client
from engine.core.state import nbytes
from engine.errors import CancelledError, ConfigError
from engine.executors.base import EXECUTORS, Executor, ExecutorParams
from engine.types import ClientResult

INSTALL_HINT = "Ray is not installed: pip install 'fedmosaic[ray]' (or pip install 'ray>=2.9')"


def available() -> bool:
    """Whether Ray can be imported here."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _client_task(job: ClientJob, env: ClientEnv, threads: int) -> ClientResult:
    import ray

    torch.set_num_threads(max(1, int(threads)))
    if isinstance(job.data, ray.ObjectRef):  # nested refs are not resolved by Ray itself
        job = dataclasses.replace(job, data=ray.get(job.data))
    return run_client(job, env)


def memory_request(job: ClientJob) -> int:
    """Bytes to reserve for a client's task: parameters, gradients and two optimiser moments
    (4x the model), its data twice (host copy and batches), plus 256 MiB for the torch runtime."""
    model = nbytes(job.state["model"])
    data = nbytes([job.data.train.x, job.data.train.y, job.data.test.x, job.data.test.y])
    return int(4 * model + 2 * data + (256 << 20))


def _quiet(message: str) -> None:
    """A log that drops its message (what a remote client's server copy warns about)."""


def _slim_env(env: ClientEnv) -> ClientEnv:
    """The env without server-side state and callables (they would drag the whole simulation
    into every task)."""
    strategy = copy.copy(env.strategy)
    server = strategy.server
    combine = copy.copy(server.combine)
    if combine is not None:
        combine.log = _quiet  # the run's log holds the store's lock; warnings are the server's
    strategy.server = dataclasses.replace(
        server,
        initial_states=None,
        client_state=None,
        build=None,
        log=None,
        pooled_train=None,
        public=None,
        clients=[],
        combine=combine,
    )
    strategy.state = {}
    return ClientEnv(strategy, env.task, env.seed, env.build, cancel=None)


ADDRESS = r"^(local|auto|ray://[A-Za-z0-9.-]{1,253}:[0-9]{1,5}|[A-Za-z0-9.-]{1,253}:[0-9]{1,5})$"


class RayInitOptions(BaseModel):
    """The ``ray.init`` arguments a config may set (no runtime environments, working directories
    or other code shipped to the cluster)."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: int | None = Field(None, ge=1, le=4096, description="CPUs of a local Ray instance")
    num_gpus: int | None = Field(None, ge=0, le=256, description="GPUs of a local Ray instance")
    object_store_memory: int | None = Field(None, ge=80 * 2**20, description="bytes of the object store")
    namespace: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Ray namespace")
    include_dashboard: bool | None = Field(None, description="start Ray's dashboard (default: no)")
    log_to_driver: bool | None = Field(None, description="print the workers' logs here (default: no)")


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    description = "Each client's turn is a Ray task (local Ray or a cluster); optional extra."

    class Params(ExecutorParams):
        ray_address: str = Field(
            "local", max_length=300, description="local, auto, ray://host:port (Ray Client) or host:port"
        )
        num_cpus: float = Field(1, gt=0, le=1024, description="CPUs per client task")
        num_gpus: float = Field(1, ge=0, le=64, description="GPUs per task of a client on cuda")
        max_retries: int = Field(1, ge=0, le=10, description="retries of a task whose worker died")
        init_options: RayInitOptions = Field(
            default_factory=RayInitOptions, description="extra arguments of ray.init"
        )

        @field_validator("ray_address")
        @classmethod
        def _address(cls, value: str) -> str:
            if not re.match(ADDRESS, value):
                raise ValueError(
                    "use local (start Ray here), auto (join this machine's cluster), "
                    "ray://host:10001 (Ray Client) or host:6379"
                )
            return value

    def __init__(
        self,
        ray_address: str = "local",
        num_cpus: float = 1,
        num_gpus: float = 1,
        max_retries: int = 1,
        init_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        try:
            import ray
        except ImportError:
            raise ConfigError(f"executor 'ray': {INSTALL_HINT}") from None
        self.ray = ray
        self.num_cpus, self.num_gpus, self.max_retries = float(num_cpus), float(num_gpus), int(max_retries)
        self._started_here = False
        if not ray.is_initialized():
            kwargs = dict(init_options or {})
            kwargs.setdefault("include_dashboard", False)
            kwargs.setdefault("log_to_driver", False)
            if ray_address == "local":
                kwargs.setdefault("num_cpus", max(1, (torch.get_num_threads() or 1)))
                ray.init(**kwargs)
            else:
                ray.init(address=ray_address, **kwargs)
            self._started_here = True
        self._remote = ray.remote(_client_task)
        self._data: dict[int, Any] = {}

    def _options(self, job: ClientJob) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "num_cpus": self.num_cpus,
            "max_retries": self.max_retries,
            "retry_exceptions": False,
            "memory": memory_request(job),
        }
        if job.device.type == "cuda":
            opts["num_gpus"] = self.num_gpus
        return opts

    def map(self, jobs: list[ClientJob], env: ClientEnv) -> list[ClientResult]:
        ray = self.ray
        env_ref = ray.put(_slim_env(env))
        refs = []
        for job in jobs:
            data_ref = self._data.get(job.client.id)
            if data_ref is None:
                data_ref = self._data[job.client.id] = ray.put(job.data)
            remote_job = dataclasses.replace(job, data=data_ref)
            refs.append(
                self._remote.options(**self._options(job)).remote(
                    remote_job, env_ref, max(1, int(self.num_cpus))
                )
            )
        done: dict[Any, ClientResult | None] = {}
        pending = list(refs)
        while pending:
            if env.cancel is not None and env.cancel.is_set():
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise CancelledError("cancelled")
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.2)
            for ref in ready:
                try:
                    done[ref] = ray.get(ref)
                except (
                    ray.exceptions.WorkerCrashedError,
                    ray.exceptions.NodeDiedError,
                    ray.exceptions.TaskCancelledError,
                    ray.exceptions.ObjectLostError,
                ) as exc:
                    done[ref] = None
                    job = jobs[refs.index(ref)]
                    env.log(
                        f"{job.client.name}: its Ray worker died ({type(exc).__name__}) after "
                        f"{self.max_retries} retr{'y' if self.max_retries == 1 else 'ies'}; "
                        f"dropped for round {job.round}"
                    )
                except ray.exceptions.RayTaskError as exc:
                    raise exc.as_instanceof_cause() from None
        return [r for r in (done[ref] for ref in refs) if r is not None]

    def close(self) -> None:
        self._data.clear()
        if self._started_here and self.ray.is_initialized():
            self.ray.shutdown()
            self._started_here = False
