"""The way fleets are managed today: a sequential script with Viam's official Python SDK.

Used by `cargo bench --bench fleet` as the baseline fleetform is compared with. It performs the
same workloads as the benchmark, one call at a time, against the local cloud:

  cold   create every location, machine and part of the fleet and write each part's config
  noop   read the whole fleet (locations, machines, parts) and compare it with the wanted configs
  one    the same reads, then update the one part whose config differs

Usage: sdk_baseline.py --url 127.0.0.1:PORT --key-id ID --key KEY --locations L --machines M \
                       --workload cold|noop|one
Prints one JSON object: {"seconds": …, "calls": …}.
"""

import argparse
import asyncio
import json
import time

from viam.app.viam_client import ViamClient
from viam.rpc.dial import Credentials, DialOptions


def wanted(loc, m, p, bump=False):
    value = 2 if bump else 1
    return {"components": [{"name": f"c{p}", "model": "fake", "attributes": {"rev": value, "slot": m}}]}


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key-id", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--locations", type=int, required=True)
    ap.add_argument("--machines", type=int, required=True)
    ap.add_argument("--workload", choices=["cold", "noop", "one"], required=True)
    a = ap.parse_args()

    opts = DialOptions(credentials=Credentials(type="api-key", payload=a.key), auth_entity=a.key_id, insecure=True)
    client = await ViamClient.create_from_dial_options(opts, app_url=a.url)
    app = client.app_client
    calls = 0

    def count(n=1):
        nonlocal calls
        calls += n

    start = time.monotonic()
    org = (await app.list_organizations())[0].id
    count()
    if a.workload == "cold":
        for li in range(a.locations):
            loc = await app.create_location(org, f"site-{li:03}")
            count()
            for mi in range(a.machines):
                name = f"m{li:03}-{mi:02}"
                robot = await app.new_robot(name, loc.id)
                count()
                parts = await app.get_robot_parts(robot)
                count()
                main = [p for p in parts if p.main_part][0]
                await app.update_robot_part(main.id, f"{name}-main", robot_config=wanted(li, mi, 0))
                count()
                aux = await app.new_robot_part(robot, f"{name}-aux")
                count()
                await app.update_robot_part(aux, f"{name}-aux", robot_config=wanted(li, mi, 1))
                count()
    else:
        bump = a.workload == "one"
        locations = await app.list_locations(org)
        count()
        for loc in locations:
            li = int(loc.name.split("-")[1])
            robots = await app.list_robots(loc.id)
            count()
            for robot in robots:
                mi = int(robot.name.split("-")[1])
                parts = await app.get_robot_parts(robot.id)
                count()
                for part in parts:
                    p = 0 if part.main_part else 1
                    want = wanted(li, mi, p, bump=bump and li == 0 and mi == 0 and p == 0)
                    if (part.robot_config or {}) != want:
                        await app.update_robot_part(part.id, part.name, robot_config=want)
                        count()
    seconds = time.monotonic() - start
    client.close()
    print(json.dumps({"seconds": seconds, "calls": calls}))


asyncio.run(main())
