#!/usr/bin/env python3
"""Drive fleetform's local cloud with the official Viam Python SDK (viam-sdk 0.85.1).

Usage:
    sdk_compat.py --url 127.0.0.1:PORT --key-id KEY_ID --key KEY [--org-name NAME] [--owner-email EMAIL]

Every check prints one line. Each section builds its own locations and machines, so a failing
check is recorded and the remaining sections still run. The exit status is non-zero if any
check failed; the failures are listed again at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import sys
import time
import traceback
import uuid
from typing import Any, Awaitable, Callable, Iterable, Optional, TypeVar

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from viam.app.app_client import APIKeyAuthorization, AppClient, Fragment
from viam.app.viam_client import ViamClient
from viam.gen.app.v1.app_pb2 import (
    PKCE,
    ClientAuthentication,
    CreateOAuthAppRequest,
    CreateOAuthAppUserRequest,
    DeleteOAuthAppRequest,
    EnabledGrant,
    ListMachineSummariesRequest,
    ListOAuthAppsRequest,
    OAuthConfig,
    OnlineState,
    ReadOAuthAppRequest,
    UpdateOAuthAppRequest,
    URLValidation,
)
from viam.gen.app.v1.robot_grpc import RobotServiceStub
from viam.gen.app.v1.robot_pb2 import LogRequest
from viam.proto.app import (
    Authorization,
    DeleteFragmentTagRequest,
    GetFragmentRequest,
    GetFragmentUsageRequest,
    RenameKeyRequest,
    SetFragmentTagRequest,
)
from viam.proto.common import LogEntry as LogEntryPB
from viam.rpc.dial import Credentials, DialOptions
from viam.utils import dict_to_struct

T = TypeVar("T")

RPC_TIMEOUT = 15.0  # seconds for any single call
TAIL_TIMEOUT = 5.0  # seconds to wait for one tailed batch

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LOCATION_ID_RE = re.compile(r"^[a-z0-9]{10}$")

# A unique suffix, so names never collide with anything left over in the store.
RUN = uuid.uuid4().hex[:8]


class CheckFailed(Exception):
    pass


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failures: list[str] = []

    def ok(self, name: str, cond: bool, detail: str = "") -> bool:
        if cond:
            self.passed += 1
            print(f"ok    {name}", flush=True)
            return True
        msg = f"{name}: {detail}" if detail else name
        self.failures.append(msg)
        print(f"FAIL  {msg}", flush=True)
        return False

    def eq(self, name: str, got: Any, want: Any) -> bool:
        return self.ok(name, got == want, f"expected {want!r}, got {got!r}")

    def must(self, name: str, cond: bool, detail: str = "") -> None:
        """Like ok(), but the rest of the section depends on it: abort the section on failure."""
        if not self.ok(name, cond, detail):
            raise CheckFailed(name)

    def must_eq(self, name: str, got: Any, want: Any) -> None:
        self.must(name, got == want, f"expected {want!r}, got {got!r}")

    async def status(
        self, name: str, want: Status | Iterable[Status], coro: Awaitable[Any]
    ) -> Optional[GRPCError]:
        """The call must fail with one of the wanted gRPC statuses."""
        wanted = {want} if isinstance(want, Status) else set(want)
        wanted_txt = "|".join(sorted(s.name for s in wanted))
        try:
            got = await asyncio.wait_for(coro, RPC_TIMEOUT)
        except GRPCError as e:
            self.ok(name, e.status in wanted, f"expected {wanted_txt}, got {e.status.name} ({e.message!r})")
            return e
        except asyncio.TimeoutError:
            self.ok(name, False, f"expected {wanted_txt}, call timed out after {RPC_TIMEOUT}s")
            return None
        self.ok(name, False, f"expected {wanted_txt}, call succeeded and returned {short(got)}")
        return None


def short(v: Any, n: int = 300) -> str:
    s = repr(v)
    return s if len(s) <= n else s[:n] + "..."


async def call(coro: Awaitable[T]) -> T:
    return await asyncio.wait_for(coro, RPC_TIMEOUT)


def secret_ids(auth: Any) -> list[str]:
    return [s.id for s in auth.secrets]


class Ctx:
    def __init__(self, args: argparse.Namespace, vc: ViamClient, checks: Checks) -> None:
        self.args = args
        self.vc = vc
        self.app: AppClient = vc.app_client
        self.c = checks
        self.org_id = ""
        # RobotService/Log on the very channel and token the AppClient uses.
        self.robot_svc = RobotServiceStub(vc._channel)
        self.metadata = dict(vc._metadata)
        self.log_clock = dt.datetime.now(dt.timezone.utc)

    async def push_logs(self, part_id: str, entries: list[tuple[str, str]]) -> None:
        """Push (level, message) entries with strictly increasing timestamps."""
        logs = []
        for level, message in entries:
            self.log_clock += dt.timedelta(milliseconds=1)
            e = LogEntryPB(
                host="sdk-compat-host",
                level=level,
                logger_name="sdk_compat.test",
                message=message,
                caller=dict_to_struct({"Defined": True, "File": "sdk_compat.py", "Line": 42}),
                stack="",
            )
            e.time.FromDatetime(self.log_clock)
            logs.append(e)
        await call(self.robot_svc.Log(LogRequest(id=part_id, logs=logs), metadata=self.metadata))

    async def new_location(self, name: str, parent: Optional[str] = None) -> str:
        loc = await call(self.app.create_location(self.org_id, name, parent))
        return loc.id

    async def new_machine(self, tag: str) -> tuple[str, str, str]:
        """A fresh location with one machine. Returns (location_id, robot_id, main_part_id)."""
        loc = await self.new_location(f"{tag}-loc-{RUN}")
        robot = await call(self.app.new_robot(f"{tag}-bot", loc))
        parts = await call(self.app.get_robot_parts(robot))
        main = [p for p in parts if p.main_part]
        self.c.must(f"{tag}: fresh machine has one main part", len(parts) == 1 and len(main) == 1, short(parts))
        return loc, robot, main[0].id


# ------------------------------------------------------------------------------------------------
# Sections


async def section_connect(ctx: Ctx) -> None:
    c = ctx.c
    c.ok("connect: authenticated with the API key", bool(ctx.metadata.get("authorization", "").startswith("Bearer ")))

    # A wrong key secret must not get a token.
    bad = DialOptions(
        credentials=Credentials(type="api-key", payload="x" * 32), auth_entity=ctx.args.key_id, insecure=True
    )
    await c.status(
        "connect: wrong API key is rejected",
        [Status.UNAUTHENTICATED, Status.PERMISSION_DENIED],
        ViamClient.create_from_dial_options(bad, app_url=ctx.args.url),
    )
    # An unknown key id must not get a token either.
    bad_id = DialOptions(
        credentials=Credentials(type="api-key", payload=ctx.args.key), auth_entity=str(uuid.uuid4()), insecure=True
    )
    await c.status(
        "connect: unknown API key id is rejected",
        [Status.UNAUTHENTICATED, Status.PERMISSION_DENIED],
        ViamClient.create_from_dial_options(bad_id, app_url=ctx.args.url),
    )
    # A call with a bogus bearer token is refused.
    bogus = AppClient(ctx.vc._channel, {"authorization": "Bearer not-a-token"})
    await c.status("connect: bogus bearer token is refused", Status.UNAUTHENTICATED, bogus.list_organizations())


async def section_organizations(ctx: Ctx) -> None:
    c, app = ctx.c, ctx.app
    orgs = await call(app.list_organizations())
    c.must_eq("list_organizations: exactly one organization", len(orgs), 1)
    org = orgs[0]
    ctx.org_id = org.id
    c.ok("list_organizations: org id is a UUID", bool(UUID_RE.match(org.id)), org.id)
    if ctx.args.org_name:
        c.eq("list_organizations: org name", org.name, ctx.args.org_name)
    else:
        c.ok("list_organizations: org has a name", bool(org.name), short(org))

    await c.status(
        "get_organization_namespace_availability(''): INVALID_ARGUMENT",
        Status.INVALID_ARGUMENT,
        app.get_organization_namespace_availability(""),
    )
    await c.status(
        "get_organization_namespace_availability('Not Valid!'): INVALID_ARGUMENT",
        Status.INVALID_ARGUMENT,
        app.get_organization_namespace_availability("Not Valid!"),
    )
    avail = await call(app.get_organization_namespace_availability(f"sdk-compat-{RUN}"))
    c.eq("get_organization_namespace_availability: unused namespace is available", avail, True)

    members, invites = await call(app.list_organization_members(ctx.org_id))
    c.ok("list_organization_members: at least one member", len(members) >= 1, short(members))
    if ctx.args.owner_email:
        emails = [e for m in members for e in m.emails]
        c.ok(
            "list_organization_members: owner email is listed",
            ctx.args.owner_email in emails,
            f"{ctx.args.owner_email!r} not in {emails!r}",
        )
    c.ok("list_organization_members: invites is a list", isinstance(invites, list), short(invites))
    await c.status(
        "list_organization_members(unknown org): NOT_FOUND or PERMISSION_DENIED",
        [Status.NOT_FOUND, Status.PERMISSION_DENIED],
        app.list_organization_members(str(uuid.uuid4())),
    )

    # Organization settings (what `organization: {id, name, public_namespace, region}` writes).
    before = await call(app.get_organization(ctx.org_id))
    c.eq("get_organization: default_region", before.default_region, "local")
    renamed = await call(app.update_organization(ctx.org_id, name=f"{before.name}-renamed"))
    c.eq("update_organization: rename", renamed.name, f"{before.name}-renamed")
    back = await call(app.update_organization(ctx.org_id, name=before.name, region="local"))
    c.eq("update_organization: rename back, same region", (back.name, back.default_region), (before.name, "local"))
    ns = f"sdk-compat-ns-{RUN}"
    set_ns = await call(app.update_organization(ctx.org_id, public_namespace=ns))
    c.eq("update_organization: public_namespace", set_ns.public_namespace, ns)
    await c.status(
        "update_organization: unknown region: INVALID_ARGUMENT",
        Status.INVALID_ARGUMENT,
        app.update_organization(ctx.org_id, region="mars-north-1"),
    )


def auth(org_id: str, resource_type: str, resource_id: str, role: str) -> Authorization:
    return Authorization(
        authorization_type="role",
        authorization_id=f"{resource_type}_{role}",
        resource_type=resource_type,
        resource_id=resource_id,
        identity_id="",
        organization_id=org_id,
        identity_type="",
    )


def auth_keys(invite: Any) -> set[tuple[str, str, str, str]]:
    return {(a.authorization_type, a.authorization_id, a.resource_type, a.resource_id) for a in invite.authorizations}


async def section_invites(ctx: Ctx) -> None:
    c, app, org = ctx.c, ctx.app, ctx.org_id
    loc = await ctx.new_location(f"invite-loc-{RUN}")
    email = f"invitee-{RUN}@example.com"
    org_owner = auth(org, "organization", org, "owner")
    loc_operator = auth(org, "location", loc, "operator")
    loc_owner = auth(org, "location", loc, "owner")

    inv = await call(app.create_organization_invite(org, email, [org_owner], send_email_invite=False))
    c.eq("create_organization_invite: email", inv.email, email)
    c.eq(
        "create_organization_invite: authorizations",
        auth_keys(inv),
        {("role", "organization_owner", "organization", org)},
    )
    await c.status(
        "create_organization_invite: duplicate email: ALREADY_EXISTS",
        Status.ALREADY_EXISTS,
        app.create_organization_invite(org, email, [org_owner], send_email_invite=False),
    )
    _, invites = await call(app.list_organization_members(org))
    c.ok("list_organization_members: new invite is listed", email in [i.email for i in invites], short(invites))

    inv = await call(app.update_organization_invite_authorizations(org, email, add_authorizations=[loc_operator]))
    c.eq(
        "update_organization_invite_authorizations: add location operator",
        auth_keys(inv),
        {("role", "organization_owner", "organization", org), ("role", "location_operator", "location", loc)},
    )
    await c.status(
        "update_organization_invite_authorizations: second role on the same location is refused",
        [Status.INVALID_ARGUMENT, Status.FAILED_PRECONDITION, Status.ALREADY_EXISTS],
        app.update_organization_invite_authorizations(org, email, add_authorizations=[loc_owner]),
    )
    inv = await call(
        app.update_organization_invite_authorizations(
            org, email, add_authorizations=[loc_owner], remove_authorizations=[loc_operator]
        )
    )
    c.eq(
        "update_organization_invite_authorizations: swap operator for owner",
        auth_keys(inv),
        {("role", "organization_owner", "organization", org), ("role", "location_owner", "location", loc)},
    )
    inv = await call(app.update_organization_invite_authorizations(org, email, remove_authorizations=[org_owner]))
    c.eq(
        "update_organization_invite_authorizations: remove org owner",
        auth_keys(inv),
        {("role", "location_owner", "location", loc)},
    )
    await c.status(
        "update_organization_invite_authorizations: removing the last one: FAILED_PRECONDITION",
        Status.FAILED_PRECONDITION,
        app.update_organization_invite_authorizations(org, email, remove_authorizations=[loc_owner]),
    )
    await c.status(
        "update_organization_invite_authorizations: nothing to add or remove: INVALID_ARGUMENT",
        Status.INVALID_ARGUMENT,
        app.update_organization_invite_authorizations(org, email),
    )
    await c.status(
        "update_organization_invite_authorizations: unknown email: NOT_FOUND",
        Status.NOT_FOUND,
        app.update_organization_invite_authorizations(
            org, f"nobody-{RUN}@example.com", add_authorizations=[org_owner]
        ),
    )
    _, invites = await call(app.list_organization_members(org))
    listed = [i for i in invites if i.email == email]
    c.ok(
        "list_organization_members: invite shows the updated authorizations",
        len(listed) == 1 and auth_keys(listed[0]) == {("role", "location_owner", "location", loc)},
        short(listed),
    )

    await call(app.delete_organization_invite(org, email))
    _, invites = await call(app.list_organization_members(org))
    c.ok("delete_organization_invite: invite is gone", email not in [i.email for i in invites], short(invites))
    await c.status(
        "delete_organization_invite: again: NOT_FOUND", Status.NOT_FOUND, app.delete_organization_invite(org, email)
    )
    await call(app.delete_location(loc))


async def section_locations(ctx: Ctx) -> None:
    c, app, org = ctx.c, ctx.app, ctx.org_id
    a_name = f"loc-a-{RUN}"
    a = await call(app.create_location(org, a_name))
    c.ok("create_location: id is 10 lowercase alphanumerics", bool(LOCATION_ID_RE.match(a.id)), a.id)
    c.eq("create_location: name", a.name, a_name)
    c.eq("create_location: top level has no parent", a.parent_location_id, "")

    got = await call(app.get_location(a.id))
    c.eq("get_location: id", got.id, a.id)
    c.eq("get_location: name", got.name, a_name)
    c.eq("get_location: robot_count of a new location", got.robot_count, 0)
    c.eq("get_location: parent_location_id", got.parent_location_id, "")

    b = await call(app.create_location(org, f"loc-b-{RUN}", a.id))
    c.eq("create_location: child parent_location_id", b.parent_location_id, a.id)
    cc = await call(app.create_location(org, f"loc-c-{RUN}", b.id))
    c.eq("create_location: grandchild parent_location_id", cc.parent_location_id, b.id)
    await c.status(
        "create_location: 4th nesting level: FAILED_PRECONDITION",
        Status.FAILED_PRECONDITION,
        app.create_location(org, f"loc-d-{RUN}", cc.id),
    )
    await c.status("create_location: empty name: INVALID_ARGUMENT", Status.INVALID_ARGUMENT, app.create_location(org, ""))
    await c.status(
        "create_location: unknown parent: NOT_FOUND",
        Status.NOT_FOUND,
        app.create_location(org, f"orphan-{RUN}", "zzzzzzzzzz"),
    )
    await c.status("get_location: unknown id: NOT_FOUND", Status.NOT_FOUND, app.get_location("zzzzzzzzzz"))
    await c.status("get_location: no id: INVALID_ARGUMENT", Status.INVALID_ARGUMENT, app.get_location())

    # UpdateLocation: rename only, parent untouched.
    upd = await call(app.update_location(b.id, name=f"loc-b2-{RUN}"))
    c.eq("update_location: rename", upd.name, f"loc-b2-{RUN}")
    c.eq("update_location: rename keeps the parent", upd.parent_location_id, a.id)
    # Move to the top level with parent "" and name None: name untouched.
    upd = await call(app.update_location(cc.id, parent_location_id=""))
    c.eq("update_location: parent '' moves to the top level", upd.parent_location_id, "")
    c.eq("update_location: name None keeps the name", upd.name, f"loc-c-{RUN}")
    got = await call(app.get_location(cc.id))
    c.eq("get_location: move to top level persisted", got.parent_location_id, "")
    # And back under b.
    upd = await call(app.update_location(cc.id, parent_location_id=b.id))
    c.eq("update_location: move under a parent", upd.parent_location_id, b.id)
    await c.status(
        "update_location: unknown id: NOT_FOUND", Status.NOT_FOUND, app.update_location("zzzzzzzzzz", name="x")
    )
    await c.status(
        "update_location: unknown parent: NOT_FOUND",
        Status.NOT_FOUND,
        app.update_location(cc.id, parent_location_id="zzzzzzzzzz"),
    )
    await c.status(
        "update_location: moving a location under its own descendant is refused",
        [Status.INVALID_ARGUMENT, Status.FAILED_PRECONDITION],
        app.update_location(a.id, parent_location_id=cc.id),
    )
    # A 3-level chain cannot be moved under another location (it would be 4 deep).
    solo = await call(app.create_location(org, f"loc-solo-{RUN}"))
    await c.status(
        "update_location: move that makes 4 levels: FAILED_PRECONDITION",
        Status.FAILED_PRECONDITION,
        app.update_location(a.id, parent_location_id=solo.id),
    )

    # robot_count and ListLocations.
    robot = await call(app.new_robot(f"loc-bot-{RUN}", a.id))
    got = await call(app.get_location(a.id))
    c.eq("get_location: robot_count after NewRobot", got.robot_count, 1)
    locs = await call(app.list_locations(org))
    by_id = {l.id: l for l in locs}
    c.ok(
        "list_locations: lists all new locations",
        all(i in by_id for i in (a.id, b.id, cc.id, solo.id)),
        f"ids {sorted(by_id)}",
    )
    if a.id in by_id:
        c.eq("list_locations: robot_count", by_id[a.id].robot_count, 1)
    if cc.id in by_id:
        c.eq("list_locations: parent_location_id", by_id[cc.id].parent_location_id, b.id)

    # DeleteLocation rules.
    await c.status(
        "delete_location: location with children: FAILED_PRECONDITION",
        Status.FAILED_PRECONDITION,
        app.delete_location(b.id),
    )
    await c.status("delete_location: unknown id: NOT_FOUND", Status.NOT_FOUND, app.delete_location("zzzzzzzzzz"))
    await call(app.delete_location(cc.id))
    await c.status("delete_location: deleted leaf is gone", Status.NOT_FOUND, app.get_location(cc.id))
    await call(app.delete_location(b.id))
    await c.status(
        "delete_location: location with a machine: FAILED_PRECONDITION",
        Status.FAILED_PRECONDITION,
        app.delete_location(a.id),
    )
    await call(app.delete_robot(robot))
    await call(app.delete_location(a.id))
    await call(app.delete_location(solo.id))
    locs = await call(app.list_locations(org))
    left = {l.id for l in locs} & {a.id, b.id, cc.id, solo.id}
    c.eq("list_locations: deleted locations are gone", left, set())


async def section_secrets(ctx: Ctx) -> None:
    c, app = ctx.c, ctx.app
    loc = await ctx.new_location(f"secret-loc-{RUN}")
    la = await call(app.location_auth(loc))
    c.eq("location_auth: location_id", la.location_id, loc)
    c.must_eq("location_auth: a new location has exactly 1 secret", len(la.secrets), 1)
    first = la.secrets[0]
    c.ok("location_auth: secret has an id and a value", bool(first.id) and bool(first.secret), short(first))

    la2 = await call(app.create_location_secret(loc))
    c.eq("create_location_secret: now 2 secrets", len(la2.secrets), 2)
    c.ok("create_location_secret: keeps the first secret", first.id in secret_ids(la2), short(secret_ids(la2)))
    la = await call(app.location_auth(loc))
    c.eq("location_auth: 2 secrets after create", len(la.secrets), 2)
    await c.status(
        "create_location_secret: 3rd secret: FAILED_PRECONDITION",
        Status.FAILED_PRECONDITION,
        app.create_location_secret(loc),
    )
    la = await call(app.location_auth(loc))
    c.eq("location_auth: still 2 secrets after the refused 3rd", len(la.secrets), 2)

    await call(app.delete_location_secret(secret_id=first.id, location_id=loc))
    la = await call(app.location_auth(loc))
    c.eq("delete_location_secret: 1 secret left", len(la.secrets), 1)
    c.ok("delete_location_secret: the deleted one is gone", first.id not in secret_ids(la), short(secret_ids(la)))
    await c.status(
        "delete_location_secret: the last secret: FAILED_PRECONDITION",
        Status.FAILED_PRECONDITION,
        app.delete_location_secret(secret_id=la.secrets[0].id, location_id=loc),
    )
    await c.status(
        "delete_location_secret: unknown secret id: NOT_FOUND",
        Status.NOT_FOUND,
        app.delete_location_secret(secret_id=str(uuid.uuid4()), location_id=loc),
    )
    await c.status("location_auth: unknown location: NOT_FOUND", Status.NOT_FOUND, app.location_auth("zzzzzzzzzz"))
    await c.status("location_auth: no location id: INVALID_ARGUMENT", Status.INVALID_ARGUMENT, app.location_auth())
    await c.status(
        "create_location_secret: unknown location: NOT_FOUND", Status.NOT_FOUND, app.create_location_secret("zzzzzzzzzz")
    )
    await call(app.delete_location(loc))


async def section_robots(ctx: Ctx) -> None:
    c, app = ctx.c, ctx.app
    loc = await ctx.new_location(f"robot-loc-{RUN}")
    loc2 = await ctx.new_location(f"robot-loc2-{RUN}")
    name = f"bot-{RUN}"
    robot_id = await call(app.new_robot(name, loc))
    c.ok("new_robot: id is a UUID", bool(UUID_RE.match(robot_id)), robot_id)
    robot = await call(app.get_robot(robot_id))
    c.eq("get_robot: name", robot.name, name)
    c.eq("get_robot: location", robot.location, loc)

    parts = await call(app.get_robot_parts(robot_id))
    c.must_eq("get_robot_parts: one part", len(parts), 1)
    main = parts[0]
    c.eq("new_robot: main part name", main.name, f"{name}-main")
    c.eq("get_robot_parts: main_part", main.main_part, True)
    c.eq("get_robot_parts: part robot", main.robot, robot_id)
    c.eq("get_robot_parts: part location_id", main.location_id, loc)
    c.ok("get_robot_parts: part id is a UUID", bool(UUID_RE.match(main.id)), main.id)
    c.ok("get_robot_parts: robot_config is populated", isinstance(main.robot_config, dict), short(main.robot_config))
    part = await call(app.get_robot_part(main.id))
    c.eq("get_robot_part: id", part.id, main.id)
    c.eq("get_robot_part: name", part.name, f"{name}-main")
    c.eq("get_robot_part: robot", part.robot, robot_id)

    await c.status(
        "new_robot: duplicate name in a location: ALREADY_EXISTS", Status.ALREADY_EXISTS, app.new_robot(name, loc)
    )
    await c.status("new_robot: empty name: INVALID_ARGUMENT", Status.INVALID_ARGUMENT, app.new_robot("", loc))
    await c.status("new_robot: unknown location: NOT_FOUND", Status.NOT_FOUND, app.new_robot(f"x-{RUN}", "zzzzzzzzzz"))
    await c.status("new_robot: no location: INVALID_ARGUMENT", Status.INVALID_ARGUMENT, app.new_robot(f"y-{RUN}"))
    await c.status("get_robot: unknown id: NOT_FOUND", Status.NOT_FOUND, app.get_robot(str(uuid.uuid4())))
    await c.status("get_robot_parts: unknown robot: NOT_FOUND", Status.NOT_FOUND, app.get_robot_parts(str(uuid.uuid4())))
    await c.status("get_robot_part: unknown id: NOT_FOUND", Status.NOT_FOUND, app.get_robot_part(str(uuid.uuid4())))
    # The same machine name in another location is fine.
    other = await call(app.new_robot(name, loc2))
    c.ok("new_robot: same name in another location is allowed", other != robot_id, other)

    robots = await call(app.list_robots(loc))
    c.eq("list_robots: the location's machines", [r.id for r in robots], [robot_id])
    upd = await call(app.update_robot(robot_id, f"{name}-renamed"))
    c.eq("update_robot: rename", upd.name, f"{name}-renamed")
    c.eq("update_robot: no location keeps the location", upd.location, loc)
    robot = await call(app.get_robot(robot_id))
    c.eq("get_robot: rename persisted", robot.name, f"{name}-renamed")

    # Parts.
    sub_id = await call(app.new_robot_part(robot_id, f"sub-{RUN}"))
    c.ok("new_robot_part: id is a UUID", bool(UUID_RE.match(sub_id)), sub_id)
    parts = await call(app.get_robot_parts(robot_id))
    c.eq("get_robot_parts: two parts", sorted(p.id for p in parts), sorted([main.id, sub_id]))
    sub = await call(app.get_robot_part(sub_id))
    c.eq("new_robot_part: name", sub.name, f"sub-{RUN}")
    c.eq("new_robot_part: not main", sub.main_part, False)
    await c.status(
        "new_robot_part: duplicate part name on the machine: ALREADY_EXISTS",
        Status.ALREADY_EXISTS,
        app.new_robot_part(robot_id, f"sub-{RUN}"),
    )
    r2 = await call(app.new_robot(f"bot2-{RUN}", loc))
    await c.status(
        "new_robot_part: part name taken in the location: ALREADY_EXISTS",
        Status.ALREADY_EXISTS,
        app.new_robot_part(r2, f"sub-{RUN}"),
    )
    await c.status(
        "new_robot_part: unknown robot: NOT_FOUND", Status.NOT_FOUND, app.new_robot_part(str(uuid.uuid4()), f"z-{RUN}")
    )
    await c.status(
        "delete_robot_part: main part: FAILED_PRECONDITION", Status.FAILED_PRECONDITION, app.delete_robot_part(main.id)
    )
    await call(app.mark_part_as_main(sub_id))
    parts = {p.id: p for p in await call(app.get_robot_parts(robot_id))}
    c.ok(
        "mark_part_as_main: main flag moved",
        parts[sub_id].main_part and not parts[main.id].main_part,
        short({k: v.main_part for k, v in parts.items()}),
    )
    await call(app.delete_robot_part(main.id))
    parts = await call(app.get_robot_parts(robot_id))
    c.eq("delete_robot_part: one part left", [p.id for p in parts], [sub_id])
    await c.status("delete_robot_part: deleted part is gone", Status.NOT_FOUND, app.get_robot_part(main.id))
    await c.status(
        "delete_robot_part: unknown id: NOT_FOUND", Status.NOT_FOUND, app.delete_robot_part(str(uuid.uuid4()))
    )

    # Move a machine to another location.
    moved = await call(app.update_robot(r2, f"bot2-{RUN}", loc2))
    c.eq("update_robot: move to another location", moved.location, loc2)
    robots = await call(app.list_robots(loc2))
    c.eq("list_robots: moved machine is listed", sorted(r.id for r in robots), sorted([other, r2]))

    for rid in (robot_id, other, r2):
        await call(app.delete_robot(rid))
    await c.status("delete_robot: deleted machine is gone", Status.NOT_FOUND, app.get_robot(robot_id))
    await c.status("delete_robot: unknown id: NOT_FOUND", Status.NOT_FOUND, app.delete_robot(str(uuid.uuid4())))
    robots = await call(app.list_robots(loc))
    c.eq("list_robots: empty after delete_robot", robots, [])
    await call(app.delete_location(loc))
    await call(app.delete_location(loc2))


async def section_part_updates(ctx: Ctx) -> None:
    c, app = ctx.c, ctx.app
    loc, robot, part_id = await ctx.new_machine("upd")
    p0 = await call(app.get_robot_part(part_id))
    c.must("get_robot_part: last_updated is set", p0.last_updated is not None, short(p0))
    h0 = await call(app.get_robot_part_history(part_id))

    conf1 = {
        "components": [{"name": "motor1", "api": "rdk:component:motor", "model": "fake", "attributes": {"max_rpm": 500}}],
        "services": [],
        "network": {"bind_address": ":8080"},
        "debug": True,
    }
    await asyncio.sleep(0.01)
    p1 = await call(app.update_robot_part(part_id, p0.name, conf1))
    c.eq("update_robot_part: returned config", p1.robot_config, conf1)
    c.eq("update_robot_part: name kept", p1.name, p0.name)
    c.ok(
        "update_robot_part: last_updated bumped",
        p1.last_updated is not None and p1.last_updated > p0.last_updated,
        f"{p0.last_updated} -> {p1.last_updated}",
    )
    got = await call(app.get_robot_part(part_id))
    c.eq("get_robot_part: config after update", got.robot_config, conf1)

    conf2 = {"components": [], "modules": [{"name": "m", "executable_path": "/bin/true", "type": "local"}]}
    await asyncio.sleep(0.01)
    p2 = await call(app.update_robot_part(part_id, p0.name, conf2, last_known_update=p1.last_updated))
    c.eq("update_robot_part: current last_known_update accepted, config replaced", p2.robot_config, conf2)

    await c.status(
        "update_robot_part: stale last_known_update: FAILED_PRECONDITION",
        Status.FAILED_PRECONDITION,
        app.update_robot_part(part_id, "should-not-apply", {"stale": True}, last_known_update=p1.last_updated),
    )
    got = await call(app.get_robot_part(part_id))
    c.eq("update_robot_part: stale update wrote nothing (config)", got.robot_config, conf2)
    c.eq("update_robot_part: stale update wrote nothing (name)", got.name, p0.name)
    c.eq("update_robot_part: stale update wrote nothing (last_updated)", got.last_updated, p2.last_updated)

    await c.status(
        "update_robot_part: empty name: INVALID_ARGUMENT", Status.INVALID_ARGUMENT, app.update_robot_part(part_id, "")
    )
    await c.status(
        "update_robot_part: unknown id: NOT_FOUND",
        Status.NOT_FOUND,
        app.update_robot_part(str(uuid.uuid4()), "x", {"a": 1}),
    )
    # Rename only (no robot_config): config must stay.
    renamed = f"upd-renamed-{RUN}"
    await asyncio.sleep(0.01)
    p3 = await call(app.update_robot_part(part_id, renamed))
    c.eq("update_robot_part: rename", p3.name, renamed)
    c.eq("update_robot_part: rename without config keeps the config", p3.robot_config, conf2)

    hist = await call(app.get_robot_part_history(part_id))
    c.eq("get_robot_part_history: one entry per edit", len(hist), len(h0) + 3)
    if len(hist) >= 3:
        c.ok(
            "get_robot_part_history: all entries belong to the part",
            all(h.part == part_id and h.robot == robot for h in hist),
            short([(h.part, h.robot) for h in hist]),
        )
        whens = [h.when for h in hist]
        c.ok(
            "get_robot_part_history: newest first",
            all(w is not None for w in whens) and all(whens[i] >= whens[i + 1] for i in range(len(whens) - 1)),
            short(whens),
        )
        olds = [h.old for h in hist[:3]]
        c.ok("get_robot_part_history: entries carry the old part", all(o is not None for o in olds), short(olds))
        if all(o is not None for o in olds):
            c.eq("get_robot_part_history[0].old: before the rename (name)", olds[0].name, p0.name)
            c.eq("get_robot_part_history[0].old: before the rename (config)", olds[0].robot_config, conf2)
            c.eq("get_robot_part_history[1].old: config before the 2nd edit", olds[1].robot_config, conf1)
            c.eq("get_robot_part_history[2].old: config before the 1st edit", olds[2].robot_config, p0.robot_config)
    await c.status(
        "get_robot_part_history: unknown id: NOT_FOUND",
        Status.NOT_FOUND,
        app.get_robot_part_history(str(uuid.uuid4())),
    )
    await call(app.delete_robot(robot))
    await call(app.delete_location(loc))


async def section_logs(ctx: Ctx) -> None:
    c, app = ctx.c, ctx.app
    loc, robot, part_id = await ctx.new_machine("logs")
    empty = await call(app.get_robot_part_logs(part_id))
    c.eq("get_robot_part_logs: a new part has no logs", empty, [])

    n = 150
    entries = [("error" if i % 10 == 0 else "info", f"entry-{i:03d}") for i in range(n)]
    await ctx.push_logs(part_id, entries[:100])
    await ctx.push_logs(part_id, entries[100:])

    logs = await call(app.get_robot_part_logs(part_id, num_log_entries=120))
    c.eq("get_robot_part_logs(num_log_entries=120): count", len(logs), 120)
    c.eq(
        "get_robot_part_logs(num_log_entries=120): newest first",
        [l.message for l in logs],
        [f"entry-{i:03d}" for i in range(n - 1, n - 121, -1)],
    )
    if logs:
        top = logs[0]
        c.eq("get_robot_part_logs: level round trip", top.level, "info")
        c.eq("get_robot_part_logs: host round trip", top.host, "sdk-compat-host")
        c.eq("get_robot_part_logs: logger_name round trip", top.logger_name, "sdk_compat.test")
        c.eq(
            "get_robot_part_logs: caller round trip",
            top.caller,
            {"Defined": True, "File": "sdk_compat.py", "Line": 42},
        )
        c.ok("get_robot_part_logs: time is set", top.time is not None, short(top))

    all_logs = await call(app.get_robot_part_logs(part_id, num_log_entries=0))
    c.eq(
        "get_robot_part_logs(num_log_entries=0): all entries over several pages, newest first",
        [l.message for l in all_logs],
        [f"entry-{i:03d}" for i in range(n - 1, -1, -1)],
    )
    default = await call(app.get_robot_part_logs(part_id))
    c.eq("get_robot_part_logs(): default 100", len(default), 100)

    filtered = await call(app.get_robot_part_logs(part_id, filter="entry-14", num_log_entries=0))
    c.eq(
        "get_robot_part_logs(filter): substring match, newest first",
        [l.message for l in filtered],
        [f"entry-{i:03d}" for i in range(149, 139, -1)],
    )
    errors = await call(app.get_robot_part_logs(part_id, log_levels=["error"], num_log_entries=0))
    c.eq(
        "get_robot_part_logs(log_levels=[error]): only errors",
        [l.message for l in errors],
        [f"entry-{i:03d}" for i in range(140, -1, -10)],
    )
    none = await call(app.get_robot_part_logs(part_id, filter="no-such-text", num_log_entries=0))
    c.eq("get_robot_part_logs(filter): no match", none, [])
    await c.status(
        "get_robot_part_logs: unknown part: NOT_FOUND",
        Status.NOT_FOUND,
        app.get_robot_part_logs(str(uuid.uuid4())),
    )
    await c.status(
        "RobotService/Log: unknown part: NOT_FOUND",
        Status.NOT_FOUND,
        ctx.push_logs(str(uuid.uuid4()), [("info", "lost")]),
    )
    await call(app.delete_robot(robot))
    await call(app.delete_location(loc))


async def tail_once(
    ctx: Ctx, part_id: str, push: Callable[[int], Awaitable[None]], **kwargs: Any
) -> Optional[list[Any]]:
    """Open a tail, then push batches until one arrives; returns the first received batch."""
    stream = await call(ctx.app.tail_robot_part_logs(part_id, **kwargs))
    it = stream.__aiter__()
    task = asyncio.ensure_future(stream.next())
    try:
        # The SDK opens the stream lazily on the first next(); give it time to subscribe.
        await asyncio.sleep(0.3)
        for attempt in range(5):
            if task.done():
                break
            await push(attempt)
            done, _ = await asyncio.wait({task}, timeout=TAIL_TIMEOUT / 5)
            if done:
                break
        done, _ = await asyncio.wait({task}, timeout=TAIL_TIMEOUT)
        if not done:
            return None
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            try:
                await asyncio.wait_for(aclose(), 5)
            except Exception:
                pass


async def section_tail(ctx: Ctx) -> None:
    c, app = ctx.c, ctx.app
    loc, robot, part_id = await ctx.new_machine("tail")
    # Entries pushed before the tail starts must not be replayed.
    await ctx.push_logs(part_id, [("error", "before-tail-1"), ("info", "before-tail-2")])

    pushed: list[list[str]] = []

    async def push_all(attempt: int) -> None:
        batch = [("info", f"tail-{attempt}-a"), ("error", f"tail-{attempt}-b"), ("warn", f"tail-{attempt}-c")]
        pushed.append([m for _, m in batch])
        await ctx.push_logs(part_id, batch)

    got = await tail_once(ctx, part_id, push_all, errors_only=False)
    c.must("tail_robot_part_logs(errors_only=False): received a batch", got is not None, "nothing within the timeout")
    assert got is not None
    msgs = [l.message for l in got]
    c.ok(
        "tail_robot_part_logs(errors_only=False): exactly one pushed batch, in order",
        msgs in pushed,
        f"got {msgs!r}, pushed {pushed!r}",
    )
    c.ok(
        "tail_robot_part_logs: nothing from before the tail started",
        not any(m.startswith("before-tail") for m in msgs),
        short(msgs),
    )

    pushed.clear()
    got = await tail_once(ctx, part_id, push_all)  # SDK default errors_only=True
    c.must("tail_robot_part_logs(default errors_only): received a batch", got is not None, "nothing within the timeout")
    assert got is not None
    msgs = [l.message for l in got]
    c.ok(
        "tail_robot_part_logs(default errors_only): only the error entry",
        any(msgs == [m for m in b if m.endswith("-b")] for b in pushed),
        f"got {msgs!r}, pushed {pushed!r}",
    )
    c.ok("tail_robot_part_logs: levels are error", all(l.level == "error" for l in got), short(got))

    pushed.clear()

    async def push_filtered(attempt: int) -> None:
        batch = [("info", f"noise-{attempt}"), ("info", f"needle-{attempt}")]
        pushed.append([m for _, m in batch])
        await ctx.push_logs(part_id, batch)

    got = await tail_once(ctx, part_id, push_filtered, errors_only=False, filter="needle")
    c.must("tail_robot_part_logs(filter): received a batch", got is not None, "nothing within the timeout")
    assert got is not None
    msgs = [l.message for l in got]
    c.ok(
        "tail_robot_part_logs(filter): only matching entries",
        len(msgs) == 1 and msgs[0].startswith("needle-"),
        short(msgs),
    )
    # The tailed entries were stored too.
    stored = await call(app.get_robot_part_logs(part_id, num_log_entries=0))
    c.ok(
        "get_robot_part_logs: tailed entries were stored",
        msgs[0] in [l.message for l in stored],
        short([l.message for l in stored]),
    )

    await c.status(
        "tail_robot_part_logs: unknown part: NOT_FOUND",
        Status.NOT_FOUND,
        (await call(app.tail_robot_part_logs(str(uuid.uuid4()), errors_only=False))).next(),
    )
    await call(app.delete_robot(robot))
    await call(app.delete_location(loc))


async def section_fragments(ctx: Ctx) -> None:
    c, app, org = ctx.c, ctx.app, ctx.org_id
    conf = {"components": [{"name": "cam", "api": "rdk:component:camera", "model": "fake", "attributes": {}}]}
    name = f"frag-{RUN}"
    frag = await call(app.create_fragment(org, name, conf))
    c.ok("create_fragment: id is a UUID", bool(UUID_RE.match(frag.id)), frag.id)
    c.eq("create_fragment: name", frag.name, name)
    c.eq("create_fragment: private by default", frag.visibility, Fragment.Visibility.PRIVATE)
    c.eq("create_fragment: public flag", frag.public, False)
    c.eq("create_fragment: config", frag.fragment, conf)
    c.eq("create_fragment: organization_owner", frag.organization_owner, org)
    c.eq("create_fragment: robot_part_count", frag.robot_part_count, 0)
    await c.status("create_fragment: empty name: INVALID_ARGUMENT", Status.INVALID_ARGUMENT, app.create_fragment(org, ""))

    got = await call(app.get_fragment(frag.id))
    c.eq("get_fragment: name", got.name, name)
    c.eq("get_fragment: config", got.fragment, conf)
    await c.status("get_fragment: unknown id: NOT_FOUND", Status.NOT_FOUND, app.get_fragment(str(uuid.uuid4())))

    conf2 = {"components": [], "services": [{"name": "nav", "api": "rdk:service:navigation", "model": "builtin"}]}
    upd = await call(app.update_fragment(frag.id, f"{name}-v2", conf2))
    c.eq("update_fragment: name", upd.name, f"{name}-v2")
    c.eq("update_fragment: config", upd.fragment, conf2)
    got = await call(app.get_fragment(frag.id))
    c.eq("get_fragment: config after update", got.fragment, conf2)

    private = await call(app.list_fragments(org, visibilities=[Fragment.Visibility.PRIVATE]))
    c.ok("list_fragments(PRIVATE): lists the fragment", frag.id in [f.id for f in private], short(private))
    public = await call(app.list_fragments(org, visibilities=[Fragment.Visibility.PUBLIC]))
    c.ok("list_fragments(PUBLIC): does not list it", frag.id not in [f.id for f in public], short(public))

    # robot_part_count: both config shapes count.
    loc, robot, part_a = await ctx.new_machine("frag")
    part_b = await call(app.new_robot_part(robot, f"frag-b-{RUN}"))
    pa = await call(app.get_robot_part(part_a))
    await call(app.update_robot_part(part_a, pa.name, {"fragments": [{"id": frag.id}]}))
    got = await call(app.get_fragment(frag.id))
    c.eq("get_fragment: robot_part_count with [{id}] form", got.robot_part_count, 1)
    await call(app.update_robot_part(part_b, f"frag-b-{RUN}", {"fragments": [frag.id]}))
    got = await call(app.get_fragment(frag.id))
    c.eq("get_fragment: robot_part_count with [id] form too", got.robot_part_count, 2)
    listed = [f for f in await call(app.list_fragments(org, visibilities=[Fragment.Visibility.PRIVATE])) if f.id == frag.id]
    c.ok(
        "list_fragments: robot_part_count", len(listed) == 1 and listed[0].robot_part_count == 2, short(listed)
    )

    await c.status(
        "delete_fragment: in use: FAILED_PRECONDITION", Status.FAILED_PRECONDITION, app.delete_fragment(frag.id)
    )
    await call(app.update_robot_part(part_a, pa.name, {"components": []}))
    await call(app.update_robot_part(part_b, f"frag-b-{RUN}", {"components": []}))
    got = await call(app.get_fragment(frag.id))
    c.eq("get_fragment: robot_part_count after removing it from configs", got.robot_part_count, 0)
    await call(app.delete_fragment(frag.id))
    await c.status("delete_fragment: deleted fragment is gone", Status.NOT_FOUND, app.get_fragment(frag.id))
    await c.status("delete_fragment: unknown id: NOT_FOUND", Status.NOT_FOUND, app.delete_fragment(str(uuid.uuid4())))
    await call(app.delete_robot(robot))
    await call(app.delete_location(loc))


async def section_real_fleets(ctx: Ctx) -> None:
    """What real fleets use: location organizations, owner invites, configs as JSON text,
    ListRobotsForLocations, and fragment revisions, tags, history and usage."""
    c, app, org = ctx.c, ctx.app, ctx.org_id

    # Location.organizations names our organization as the primary one.
    loc, robot, part_id = await ctx.new_machine("fleet")
    got = await call(app.get_location(loc))
    c.eq(
        "get_location: organizations lists the owner as primary",
        [(o.organization_id, o.primary) for o in got.organizations],
        [(org, True)],
    )
    listed = [l for l in await call(app.list_locations(org)) if l.id == loc]
    c.eq(
        "list_locations: organizations set",
        [(o.organization_id, o.primary) for l in listed for o in l.organizations],
        [(org, True)],
    )

    # An invite without authorizations makes an owner of the organization.
    email = f"owner-{RUN}@example.com"
    inv = await call(app.create_organization_invite(org, email))
    c.eq(
        "create_organization_invite: no authorizations = organization owner",
        auth_keys(inv),
        {("role", "organization_owner", "organization", org)},
    )
    await call(app.delete_organization_invite(org, email))

    # robot_config_json is stored and read back exactly as written.
    text = '{"z": 1,\n "components": [{"name": "m", "attributes": {"max_rpm": 8, "ratio": 8.0}}], "\u00fc": "\u2713"}'
    p = await call(app.get_robot_part(part_id))
    upd = await call(app.update_robot_part(part_id, p.name, robot_config_json=text))
    c.eq("update_robot_part(robot_config_json): returned as written", upd.robot_config_json, text)
    got = await call(app.get_robot_part(part_id))
    c.eq("get_robot_part: robot_config_json read back as written", got.robot_config_json, text)
    c.eq("get_robot_part: robot_config matches the JSON text", got.robot_config, json.loads(text))

    # ListRobotsForLocations lists the machines of several locations at once.
    loc2 = await ctx.new_location(f"fleet-loc2-{RUN}")
    robot2 = await call(app.new_robot(f"fleet-bot2-{RUN}", loc2))
    robots = await call(app.list_robots_for_locations([loc, loc2]))
    c.eq("list_robots_for_locations: machines of both locations", sorted(r.id for r in robots), sorted([robot, robot2]))
    await c.status(
        "list_robots_for_locations: unknown location: NOT_FOUND",
        Status.NOT_FOUND,
        app.list_robots_for_locations(["zzzzzzzzzz"]),
    )

    # Fragment revisions and tags (GetFragment's revisions and tags through the raw stub: the
    # SDK's get_fragment returns only the fragment).
    stub, md = app._app_client, ctx.metadata
    frag = await call(app.create_fragment(org, f"fleet-frag-{RUN}", {"n": 0}))
    for n in (1, 2):
        await call(app.update_fragment(frag.id, frag.name, {"n": n}))
    resp = await call(stub.GetFragment(GetFragmentRequest(id=frag.id), metadata=md))
    c.eq("GetFragment: revisions", [r.revision for r in resp.revisions], ["1", "2", "3"])
    c.eq("GetFragment: current revision", resp.fragment.revision, "3")
    c.eq("GetFragment: no tags yet", list(resp.tags), [])
    tags = await call(stub.SetFragmentTag(SetFragmentTagRequest(fragment_id=frag.id, tag="stable", revision="2"), metadata=md))
    c.eq("SetFragmentTag: stable -> 2", [(t.tag, t.revision) for t in tags.tags], [("stable", "2")])
    tags = await call(stub.SetFragmentTag(SetFragmentTagRequest(fragment_id=frag.id, tag="stable", revision="3"), metadata=md))
    c.eq("SetFragmentTag: stable moves to 3", [(t.tag, t.revision) for t in tags.tags], [("stable", "3")])
    await call(stub.SetFragmentTag(SetFragmentTagRequest(fragment_id=frag.id, tag="beta", revision="1"), metadata=md))
    resp = await call(stub.GetFragment(GetFragmentRequest(id=frag.id), metadata=md))
    c.eq("GetFragment: tags", [(t.tag, t.revision) for t in resp.tags], [("beta", "1"), ("stable", "3")])
    old = await call(app.get_fragment(frag.id, version="beta"))
    c.eq("get_fragment(version=tag): that revision's config", old.fragment, {"n": 0})
    old = await call(app.get_fragment(frag.id, version="2"))
    c.eq("get_fragment(version=revision): that revision's config", old.fragment, {"n": 1})
    tags = await call(stub.DeleteFragmentTag(DeleteFragmentTagRequest(fragment_id=frag.id, tag="beta"), metadata=md))
    c.eq("DeleteFragmentTag: beta removed", [(t.tag, t.revision) for t in tags.tags], [("stable", "3")])
    await c.status(
        "DeleteFragmentTag: unknown tag: NOT_FOUND",
        Status.NOT_FOUND,
        stub.DeleteFragmentTag(DeleteFragmentTagRequest(fragment_id=frag.id, tag="beta"), metadata=md),
    )

    # GetFragmentHistory through the SDK helper: newest first, the fragment before each edit.
    hist = await call(app.get_fragment_history(frag.id, page_limit=10))
    c.eq("get_fragment_history: one entry per update", len(hist), 2)
    if len(hist) == 2:
        c.eq("get_fragment_history: newest first (old config)", [h.old.fragment for h in hist], [{"n": 1}, {"n": 0}])
        c.ok("get_fragment_history: entries name the fragment", all(h.fragment == frag.id for h in hist), short(hist))
        c.ok("get_fragment_history: edited_on set", all(h.edited_on is not None for h in hist), short(hist))
    page = await call(app.get_fragment_history(frag.id, page_limit=1))
    c.eq("get_fragment_history: page_limit", len(page), 1)

    # GetFragmentUsage counts machines per imported version.
    await call(app.update_robot_part(part_id, p.name, {"fragments": [{"id": frag.id, "version": "stable"}]}))
    parts2 = await call(app.get_robot_parts(robot2))
    await call(app.update_robot_part(parts2[0].id, parts2[0].name, {"fragments": [frag.id]}))
    usage = await call(stub.GetFragmentUsage(GetFragmentUsageRequest(fragment_id=frag.id), metadata=md))
    c.eq(
        "GetFragmentUsage: machines per version",
        [(u.version if u.HasField("version") else None, u.machines) for u in usage.version_usages],
        [(None, 1), ("stable", 1)],
    )

    for pid, name in ((part_id, p.name), (parts2[0].id, parts2[0].name)):
        await call(app.update_robot_part(pid, name, {"components": []}))
    await call(app.delete_fragment(frag.id))
    await call(app.delete_robot(robot))
    await call(app.delete_robot(robot2))
    await call(app.delete_location(loc))
    await call(app.delete_location(loc2))


async def section_metadata(ctx: Ctx) -> None:
    c, app = ctx.c, ctx.app
    loc, robot_id, part_id = await ctx.new_machine("metadata")
    data = {"team": "robotics", "floor": 2, "tags": ["a", "b"], "nested": {"ratio": 1.5, "on": True}}
    cases = [
        ("organization", app.get_organization_metadata, app.update_organization_metadata, ctx.org_id),
        ("location", app.get_location_metadata, app.update_location_metadata, loc),
        ("robot", app.get_robot_metadata, app.update_robot_metadata, robot_id),
        ("robot part", app.get_robot_part_metadata, app.update_robot_part_metadata, part_id),
    ]
    for what, get, update, ident in cases:
        c.eq(f"get_{what} metadata: empty at first", dict(await call(get(ident))), {})
        await call(update(ident, data))
        got = dict(await call(get(ident)))
        c.eq(f"update_{what} metadata: read back", got, data)
        await call(update(ident, {}))
        c.eq(f"update_{what} metadata: cleared", dict(await call(get(ident))), {})
    await c.status(
        "get_location_metadata: unknown location: NOT_FOUND", Status.NOT_FOUND, app.get_location_metadata("zzzzzzzzzz")
    )
    await c.status(
        "update_robot_metadata: unknown robot: NOT_FOUND",
        Status.NOT_FOUND,
        app.update_robot_metadata(str(uuid.uuid4()), data),
    )
    await c.status(
        "get_robot_part_metadata: unknown part: NOT_FOUND",
        Status.NOT_FOUND,
        app.get_robot_part_metadata(str(uuid.uuid4())),
    )


async def section_roles(ctx: Ctx) -> None:
    c, app = ctx.c, ctx.app
    members, _ = await call(app.list_organization_members(ctx.org_id))
    owner = members[0].user_id
    auths = await call(app.list_authorizations(ctx.org_id))
    owner_auths = [(a.identity_id, a.authorization_id, a.resource_id) for a in auths if a.identity_id == owner]
    c.ok(
        "list_authorizations: the founding member owns the organization",
        (owner, "organization_owner", ctx.org_id) in owner_auths,
        short(auths),
    )
    loc = await ctx.new_location(f"roles-loc-{RUN}")
    await call(app.add_role(ctx.org_id, owner, "operator", "location", loc))
    auths = await call(app.list_authorizations(ctx.org_id, [loc]))
    c.eq(
        "add_role + list_authorizations(resource_ids): the location operator role",
        [(a.identity_id, a.authorization_id, a.identity_type) for a in auths],
        [(owner, "location_operator", "user")],
    )
    await c.status(
        "add_role: the same role twice: ALREADY_EXISTS",
        Status.ALREADY_EXISTS,
        app.add_role(ctx.org_id, owner, "operator", "location", loc),
    )
    await call(
        app.change_role(ctx.org_id, owner, "operator", "location", loc, owner, "owner", "location", loc)
    )
    auths = await call(app.list_authorizations(ctx.org_id, [loc]))
    c.eq("change_role: operator becomes owner", [a.authorization_id for a in auths], ["location_owner"])
    await call(app.remove_role(ctx.org_id, owner, "owner", "location", loc))
    c.eq("remove_role: gone", await call(app.list_authorizations(ctx.org_id, [loc])), [])
    await c.status(
        "remove_role: the last organization owner: FAILED_PRECONDITION",
        Status.FAILED_PRECONDITION,
        app.remove_role(ctx.org_id, owner, "owner", "organization", ctx.org_id),
    )
    await c.status(
        "add_role: not a member: NOT_FOUND",
        Status.NOT_FOUND,
        app.add_role(ctx.org_id, str(uuid.uuid4()), "owner", "organization", ctx.org_id),
    )


async def connect_with(ctx: Ctx, key_id: str, key: str) -> ViamClient:
    return await asyncio.wait_for(
        ViamClient.create_from_dial_options(
            DialOptions(credentials=Credentials(type="api-key", payload=key), auth_entity=key_id, insecure=True),
            app_url=ctx.args.url,
        ),
        RPC_TIMEOUT,
    )


async def section_keys(ctx: Ctx) -> None:
    c, app = ctx.c, ctx.app
    mine = await ctx.new_location(f"keys-mine-{RUN}")
    other = await ctx.new_location(f"keys-other-{RUN}")
    key, key_id = await call(
        app.create_key(ctx.org_id, [APIKeyAuthorization("operator", "location", mine)], f"keys-{RUN}")
    )
    c.must("create_key: a UUID id and a secret", bool(UUID_RE.match(key_id)) and len(key) >= 16, short(key_id))
    listed = {k.api_key.id: k for k in await call(app.list_keys(ctx.org_id))}
    c.must("list_keys: the new key is listed", key_id in listed, short(list(listed)))
    k = listed[key_id]
    c.eq("list_keys: its name", k.api_key.name, f"keys-{RUN}")
    c.eq("list_keys: never the secret", k.api_key.key, "")
    c.eq(
        "list_keys: its authorizations",
        [(a.authorization_id, a.resource_type, a.resource_id, a.org_id) for a in k.authorizations],
        [("location_operator", "location", mine, ctx.org_id)],
    )
    c.ok("list_keys: the key this run uses is listed", ctx.args.key_id in listed, short(list(listed)))

    # The new key reaches its location and nothing else.
    scoped = await connect_with(ctx, key_id, key)
    try:
        got = await call(scoped.app_client.get_location(mine))
        c.eq("a location-operator key: get_location of its location", got.id, mine)
        await call(scoped.app_client.new_robot(f"keys-bot-{RUN}", mine))
        c.ok("a location-operator key: new_robot in its location", True)
        await c.status(
            "a location-operator key: get_location elsewhere: NOT_FOUND",
            Status.NOT_FOUND,
            scoped.app_client.get_location(other),
        )
        await c.status(
            "a location-operator key: list_keys: PERMISSION_DENIED",
            Status.PERMISSION_DENIED,
            scoped.app_client.list_keys(ctx.org_id),
        )
        seen = [loc.id for loc in await call(scoped.app_client.list_locations(ctx.org_id))]
        c.eq("a location-operator key: list_locations shows its location only", seen, [mine])
    finally:
        scoped.close()

    name_id = await call(app._app_client.RenameKey(RenameKeyRequest(id=key_id, name=f"keys-renamed-{RUN}"), metadata=app._metadata))
    c.eq("rename_key: the new name", (name_id.id, name_id.name), (key_id, f"keys-renamed-{RUN}"))
    new_key, same_id = await call(app.rotate_key(key_id))
    c.ok("rotate_key: same id, new secret", same_id == key_id and new_key != key, short((same_id, key_id)))
    rotated = await connect_with(ctx, key_id, new_key)
    try:
        got = await call(rotated.app_client.get_location(mine))
        c.eq("rotate_key: the new secret works", got.id, mine)
    finally:
        rotated.close()
    await call(app.delete_key(key_id))
    c.ok("delete_key: gone", key_id not in {k.api_key.id for k in await call(app.list_keys(ctx.org_id))})
    await c.status("delete_key: unknown id: NOT_FOUND", Status.NOT_FOUND, app.delete_key(str(uuid.uuid4())))
    await c.status(
        "create_key: no authorizations: INVALID_ARGUMENT",
        Status.INVALID_ARGUMENT,
        app.create_key(ctx.org_id, [], f"keys-empty-{RUN}"),
    )


async def section_oauth_apps(ctx: Ctx) -> None:
    """The OAuth app RPCs through the SDK's generated stub (this SDK has no wrappers for them)."""
    c, app = ctx.c, ctx.app
    stub, md = app._app_client, ctx.metadata
    config = OAuthConfig(
        client_authentication=ClientAuthentication.CLIENT_AUTHENTICATION_REQUIRED,
        pkce=PKCE.PKCE_NOT_REQUIRED_WHEN_USING_CLIENT_AUTHENTICATION,
        url_validation=URLValidation.URL_VALIDATION_EXACT_MATCH,
        origin_uris=["https://dash.example.com"],
        redirect_uris=["https://dash.example.com/callback"],
        logout_uri="https://dash.example.com/logout",
        enabled_grants=[EnabledGrant.ENABLED_GRANT_AUTHORIZATION_CODE, EnabledGrant.ENABLED_GRANT_REFRESH_TOKEN],
    )
    name = f"oauth-{RUN}"
    made = await call(stub.CreateOAuthApp(CreateOAuthAppRequest(org_id=ctx.org_id, client_name=name, oauth_config=config), metadata=md))
    c.must(
        "CreateOAuthApp: a UUID client id and a secret",
        bool(UUID_RE.match(made.client_id)) and len(made.client_secret) >= 16,
        short(made.client_id),
    )
    listed = await call(stub.ListOAuthApps(ListOAuthAppsRequest(org_id=ctx.org_id), metadata=md))
    c.ok("ListOAuthApps: the new app's client id", made.client_id in listed.client_ids, short(listed))
    read = await call(stub.ReadOAuthApp(ReadOAuthAppRequest(org_id=ctx.org_id, client_id=made.client_id), metadata=md))
    c.eq("ReadOAuthApp: its name", read.client_name, name)
    c.eq("ReadOAuthApp: its secret", read.client_secret, made.client_secret)
    c.eq("ReadOAuthApp: its config as sent", read.oauth_config, config)

    config.ClearField("logout_uri")
    config.url_validation = URLValidation.URL_VALIDATION_ALLOW_WILDCARDS
    await call(
        stub.UpdateOAuthApp(
            UpdateOAuthAppRequest(org_id=ctx.org_id, client_id=made.client_id, client_name=name + "-2", oauth_config=config),
            metadata=md,
        )
    )
    read = await call(stub.ReadOAuthApp(ReadOAuthAppRequest(org_id=ctx.org_id, client_id=made.client_id), metadata=md))
    c.eq("UpdateOAuthApp: name and config replaced", (read.client_name, read.oauth_config), (name + "-2", config))

    await c.status(
        "CreateOAuthApp: no config: INVALID_ARGUMENT",
        Status.INVALID_ARGUMENT,
        stub.CreateOAuthApp(CreateOAuthAppRequest(org_id=ctx.org_id, client_name=name), metadata=md),
    )
    await c.status(
        "ReadOAuthApp: unknown client id: NOT_FOUND",
        Status.NOT_FOUND,
        stub.ReadOAuthApp(ReadOAuthAppRequest(org_id=ctx.org_id, client_id=str(uuid.uuid4())), metadata=md),
    )
    await c.status(
        "ListOAuthApps: another organization: NOT_FOUND or PERMISSION_DENIED",
        {Status.NOT_FOUND, Status.PERMISSION_DENIED},
        stub.ListOAuthApps(ListOAuthAppsRequest(org_id=str(uuid.uuid4())), metadata=md),
    )
    # An operator key manages no OAuth apps.
    key, key_id = await call(
        app.create_key(ctx.org_id, [APIKeyAuthorization("operator", "organization", ctx.org_id)], f"oauth-op-{RUN}")
    )
    operator = await connect_with(ctx, key_id, key)
    try:
        op = operator.app_client
        await c.status(
            "an operator key: ReadOAuthApp: PERMISSION_DENIED",
            Status.PERMISSION_DENIED,
            op._app_client.ReadOAuthApp(
                ReadOAuthAppRequest(org_id=ctx.org_id, client_id=made.client_id), metadata=op._metadata
            ),
        )
    finally:
        operator.close()
        await call(app.delete_key(key_id))

    await call(stub.DeleteOAuthApp(DeleteOAuthAppRequest(org_id=ctx.org_id, client_id=made.client_id), metadata=md))
    listed = await call(stub.ListOAuthApps(ListOAuthAppsRequest(org_id=ctx.org_id), metadata=md))
    c.ok("DeleteOAuthApp: gone", made.client_id not in listed.client_ids, short(listed))
    await c.status(
        "an unserved RPC of the same service: UNIMPLEMENTED",
        Status.UNIMPLEMENTED,
        stub.CreateOAuthAppUser(CreateOAuthAppUserRequest(org_id=ctx.org_id, application_id=made.client_id), metadata=md),
    )


async def section_machine_summaries(ctx: Ctx) -> None:
    """ListMachineSummaries through the SDK's generated stub (this SDK has no wrapper for it)."""
    c, app = ctx.c, ctx.app
    loc, robot_id, part_id = await ctx.new_machine("summaries")
    stub = app._app_client
    resp = await call(
        stub.ListMachineSummaries(
            ListMachineSummariesRequest(organization_id=ctx.org_id, location_ids=[loc]), metadata=ctx.metadata
        )
    )
    c.eq("list_machine_summaries: one location asked, one summary", [s.location_id for s in resp.location_summaries], [loc])
    machines = resp.location_summaries[0].machine_summaries
    c.eq("list_machine_summaries: the location's machine", [m.machine_id for m in machines], [robot_id])
    parts = machines[0].part_summaries
    c.eq("list_machine_summaries: its main part", [(p.part_id, p.is_main_part) for p in parts], [(part_id, True)])
    c.eq(
        "list_machine_summaries: a part that never reported in awaits setup",
        parts[0].online_state,
        OnlineState.ONLINE_STATE_AWAITING_SETUP,
    )
    c.ok("list_machine_summaries: no last access yet", not parts[0].HasField("last_access"), short(parts[0]))
    everything = await call(
        stub.ListMachineSummaries(ListMachineSummariesRequest(organization_id=ctx.org_id), metadata=ctx.metadata)
    )
    c.ok(
        "list_machine_summaries: no location ids = every location of the organization",
        loc in [s.location_id for s in everything.location_summaries],
        short(everything),
    )
    await c.status(
        "list_machine_summaries: unknown location: NOT_FOUND",
        Status.NOT_FOUND,
        stub.ListMachineSummaries(
            ListMachineSummariesRequest(organization_id=ctx.org_id, location_ids=["zzzzzzzzzz"]), metadata=ctx.metadata
        ),
    )


SECTIONS: list[tuple[str, Callable[[Ctx], Awaitable[None]]]] = [
    ("connect", section_connect),
    ("organizations", section_organizations),
    ("invites", section_invites),
    ("locations", section_locations),
    ("secrets", section_secrets),
    ("robots", section_robots),
    ("part updates", section_part_updates),
    ("logs", section_logs),
    ("tail", section_tail),
    ("fragments", section_fragments),
    ("metadata", section_metadata),
    ("roles", section_roles),
    ("keys", section_keys),
    ("oauth apps", section_oauth_apps),
    ("machine summaries", section_machine_summaries),
    ("real fleets", section_real_fleets),
]


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="host:port of `fleetform cloud serve`")
    p.add_argument("--key-id", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--org-name", default="", help="expected organization name (optional)")
    p.add_argument("--owner-email", default="", help="expected owner email (optional)")
    args = p.parse_args()

    started = time.monotonic()
    checks = Checks()
    try:
        vc = await asyncio.wait_for(
            ViamClient.create_from_dial_options(
                DialOptions(credentials=Credentials(type="api-key", payload=args.key), auth_entity=args.key_id, insecure=True),
                app_url=args.url,
            ),
            RPC_TIMEOUT,
        )
    except Exception as e:  # noqa: BLE001
        print(f"FAIL  connect: could not create ViamClient for {args.url}: {e!r}", flush=True)
        print("0 passed, 1 failed", flush=True)
        return 1

    ctx = Ctx(args, vc, checks)
    try:
        for name, section in SECTIONS:
            if name != "connect" and name != "organizations" and not ctx.org_id:
                checks.ok(f"{name}: skipped", False, "no organization id (organizations section failed)")
                continue
            print(f"--- {name}", flush=True)
            try:
                await section(ctx)
            except CheckFailed:
                print(f"      (rest of section '{name}' skipped)", flush=True)
            except GRPCError as e:
                checks.ok(
                    f"{name}: unexpected gRPC error",
                    False,
                    f"{e.status.name}: {e.message!r}\n{traceback.format_exc()}",
                )
            except asyncio.TimeoutError:
                checks.ok(f"{name}: a call timed out", False, traceback.format_exc())
            except Exception as e:  # noqa: BLE001
                checks.ok(f"{name}: unexpected exception {e!r}", False, traceback.format_exc())
    finally:
        vc.close()

    elapsed = time.monotonic() - started
    print(f"--- done in {elapsed:.1f}s", flush=True)
    if checks.failures:
        print("failed checks:", flush=True)
        for f in checks.failures:
            print(f"  - {f}", flush=True)
    print(f"{checks.passed} passed, {len(checks.failures)} failed", flush=True)
    return 1 if checks.failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
