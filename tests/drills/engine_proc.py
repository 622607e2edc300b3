"""The embedded engine alone, on KafkaBus: ``python -m tests.drills.engine_proc DSN BOOTSTRAP``.

``gridctl run`` starts the engine in the same process as the gateway and the API. The
engine-restart drill needs to kill the engine while the gateway and the API stay up, so
it runs ``gridctl run --engine risingwave`` (gateway + API, no embedded engine) next to
this process, which does what ``cli.runtime.Runtime`` does for the engine: apply the
migrations, then run :class:`pipeline.engine.Engine` on the same Kafka topics. Prints
``ready`` once ticking; runs until killed.
"""

from __future__ import annotations

import asyncio
import sys


async def main(dsn: str, bootstrap: str, tick: float) -> None:
    from bench._common import TANSU_CLIENT_CONFIG
    from cli.runtime import default_migrations_dir
    from pipeline.bus import KafkaBus
    from pipeline.engine import Engine
    from pipeline.migrate import apply

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(
        None, lambda: apply(dsn, default_migrations_dir(), {"kafka_bootstrap": bootstrap})
    )
    bus = KafkaBus(bootstrap, config=dict(TANSU_CLIENT_CONFIG))
    await bus.start()
    engine = Engine(dsn, bus, tick=tick)
    await engine.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 1.0))
