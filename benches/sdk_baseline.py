"""The way fleets are managed today: a sequential script with Viam's official Python SDK.

Used by `cargo bench --bench fleet` as the baseline fleetform is compared with. It performs the
same workloads as the benchmark, one call at a time, against the local cloud:

  cold   create every location, machine and part of the fleet and write each part's config
  noop   read the whole fleet (locations, machines, parts) and compare it with the wanted configs
  one    the same reads, then update the one part whose config differs

Usage: sdk_baseline.py --url 127.0.0.1:PORT --key-id ID --key KEY --fleet FLEET.json \
                       --workload cold|noop|one
FLEET.json (written by the bench) lists the locations, their machines, and each part's name,
`main` flag, wanted `config` and the config of the one-change workload (`bumped`). The script
writes part configs as given; it does not create fragments (fleetform's runs do), so its call
count is a floor for the same work.
Prints one JSON object: {"seconds": …, "calls": …}.
"""

import argparse
import asyncio
import json
import time

from viam.app.viam_client import ViamClient
from viam.rpc.dial import Credentials, DialOptions


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key-id", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--fleet", required=True)
    ap.add_argument("--workload", choices=["cold", "noop", "one"], required=True)
    a = ap.parse_args()
    with open(a.fleet) as f:
        fleet = json.load(f)
    locations_by_name = {loc["name"]: loc for loc in fleet}

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
        for want_loc in fleet:
            loc = await app.create_location(org, want_loc["name"])
            count()
            for want_m in want_loc["machines"]:
                robot = await app.new_robot(want_m["name"], loc.id)
                count()
                parts = await app.get_robot_parts(robot)
                count()
                main = [p for p in parts if p.main_part][0]
                for want_p in want_m["parts"]:
                    if want_p["main"]:
                        part_id = main.id
                    else:
                        part_id = await app.new_robot_part(robot, want_p["name"])
                        count()
                    await app.update_robot_part(part_id, want_p["name"], robot_config=want_p["config"])
                    count()
    else:
        key = "bumped" if a.workload == "one" else "config"
        locations = await app.list_locations(org)
        count()
        for loc in locations:
            machines = {m["name"]: m for m in locations_by_name[loc.name]["machines"]}
            robots = await app.list_robots(loc.id)
            count()
            for robot in robots:
                wanted_parts = {p["name"]: p for p in machines[robot.name]["parts"]}
                parts = await app.get_robot_parts(robot.id)
                count()
                for part in parts:
                    want = wanted_parts[part.name][key]
                    if (part.robot_config or {}) != want:
                        await app.update_robot_part(part.id, part.name, robot_config=want)
                        count()
    seconds = time.monotonic() - start
    client.close()
    print(json.dumps({"seconds": seconds, "calls": calls}))


asyncio.run(main())
