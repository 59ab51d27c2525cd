"""A service's database pool (app.services.<name>.databasePool): what each of its processes keeps open
to PostgreSQL, rendered as its environment and counted in the connection budget (capacity.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from components.config.base import EnvName, _Strict


class DatabasePoolSettings(_Strict):
    """The connections one process of the service keeps to PostgreSQL (SQLAlchemy's QueuePool: pool_size
    plus max_overflow). Rendered as the service's environment and counted in the connection budget."""

    size: Annotated[int, Field(ge=0, le=1000)]
    """Connections kept open per process (pool_size; 000 and 003 use 20)."""
    max_overflow: Annotated[int, Field(ge=0, le=1000)] = 0
    """Extra connections per process under load (max_overflow; 000 and 003 use 30)."""
    processes: Annotated[int, Field(ge=1, le=64)] = 1
    """Worker processes per pod, each with its own pool (000's image runs `uvicorn --workers 4`): the
    program cannot see the image's command, so say it here."""
    size_env: EnvName = "DB_POOL_SIZE"
    """Environment variable the app reads `size` from."""
    max_overflow_env: EnvName = "DB_MAX_OVERFLOW"
    """Environment variable the app reads `maxOverflow` from."""
    render_env: bool = True
    """Set sizeEnv and maxOverflowEnv in the service's environment; false: the image decides its pool and
    these numbers are only counted."""

    @property
    def per_process(self) -> int:
        return self.size + self.max_overflow

    def env(self) -> dict[str, str]:
        if not self.render_env:
            return {}
        return {self.size_env: str(self.size), self.max_overflow_env: str(self.max_overflow)}
