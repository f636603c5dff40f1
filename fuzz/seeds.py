#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, built from tests/fixtures/ (Kazoo's own
payloads and our constructed ones), plus every input in fuzz/regressions/.
Usage: seeds.py CORPUS_DIR (one folder per target is filled)."""

import copy
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
out = pathlib.Path(sys.argv[1])


def fixture(name):
    return json.loads((FIX / name).read_text())


def put(target, name, body):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    (d / f"seed-{name}").write_bytes(data)


events = sorted(FIX.glob("kazoo*.callevt.*.json"))
for p in events:
    put("event", p.stem, p.read_bytes())
    ccv = json.loads(p.read_text()).get("Custom-Channel-Vars")
    if ccv is not None:
        put("ccv", p.stem, ccv)
# A call's life in one input (events split at 0xFF), on a call the registry lacks.
life = []
for name in ["CREATE", "ANSWER", "BRIDGE", "DESTROY"]:
    ev = fixture(f"kazoo43.callevt.CHANNEL_{name}.a-leg.json")
    ev["Call-ID"] = "seed-call@10.0.0.9"
    life.append(json.dumps(ev).encode())
put("event", "life", b"\xff".join(life))
put("event", "bridge-before-create", b"\xff".join([life[2], life[0]]))

envelope = {"App-Name": "crossbar", "App-Version": "4.0.0", "Node": "crossbar@kz1",
            "Msg-ID": "seed-1", "Server-ID": "crossbar@kz1-<0.1.0>-q1"}
for p in sorted(FIX.glob("*_req*.json")):
    put("query", p.stem, p.read_bytes())
for name, keys in [
    ("query_user_channels_req", {"Realm": "fuzz.example.com", "Usernames": ["alice", "bob"],
                                 "Authorizing-IDs": ["dev-alice"], "Owner-IDs": ["owner-bob"],
                                 "Active-Only": False}),
    ("query_user_channels_req", {"Realm": "fuzz.example.com", "Username": "*3101"}),
    ("query_auth_id_req", {"Auth-ID": "dev-carol"}),
    ("query_account_channels_req", {"Account-ID": "acct-fuzz-1"}),
    ("query_channels_req", {"Fields": ["Account-ID", "Custom-Channel-Vars"]}),
    ("channel_status_req", {"Call-ID": "fa@10.0.0.1", "Server-ID": "pid://<0.1.0>/q2"}),
]:
    body = dict(envelope, **{"Event-Category": "call_event", "Event-Name": name}, **keys)
    put("query", f"{name}-{len(keys)}", body)

command = dict(envelope, **{"Event-Category": "channels", "Event-Name": "command_req",
                            "Account-ID": "acct-fuzz-1", "Call-ID": "fa@10.0.0.1"})
transfer = fixture("metaflow.action.transfer.from-crossbar.json")
flow = fixture("metaflow.flow.from-crossbar.json")
put("command", "hangup", dict(command, Action="hangup"))
put("command", "transfer", dict(command, Action="transfer", Data=transfer.get("Data", {})))
put("command", "metaflow", dict(command, Action="metaflow", Data=flow.get("Flow", {})))
put("command", "play", dict(command, Action="play", Data={"id": "tone_stream://%(250,0,440)"}))

record = {
    "uuid": "snap-1@10.0.0.8", "direction": "inbound", "destination": "2600",
    "account_id": "acct-fuzz-3", "account_billing": None, "reseller_id": None,
    "reseller_billing": None, "authorizing_id": "dev-dave", "authorizing_type": "device",
    "channel_authorized": True, "owner_id": "owner-dave", "resource_id": None,
    "fetch_id": "f-1", "bridge_id": "snap-1@10.0.0.8", "callflow_id": None,
    "interaction_id": "63869600000-abc", "precedence": 5, "presence_id": "dave@fuzz",
    "realm": "fuzz.example.com", "username": "dave", "answered": True, "other_leg": None,
    "is_onhold": False, "is_loopback": False, "loopback_leg_name": None,
    "loopback_other_leg": None, "to_tag": "t", "from_tag": "f", "node": "freeswitch@fs1",
    "switch_hostname": "fs1", "switch_url": "sip:mod_sofia@10.0.0.5:11000",
    "timestamp": 63869600000, "caller_id_name": "Dave", "caller_id_number": "1001",
    "callee_id_name": None, "callee_id_number": None, "from": "dave@fuzz", "to": "2600@fuzz",
    "custom_channel_vars": fixture("kazoo43.callevt.CHANNEL_CREATE.a-leg.json")["Custom-Channel-Vars"],
    "custom_application_vars": {}, "seq": {"vars": 0, "bridge": 0, "hold": 0},
}
part = {"Event-Category": "channels", "Event-Name": "snapshot_resp", "Msg-ID": "seed-snap",
        "Node": "peer@host", "Part": 1, "Parts": 1, "Channel-Count": 2,
        "Channels": [record, dict(copy.deepcopy(record), uuid="snap-2@10.0.0.8",
                                  other_leg="snap-1@10.0.0.8")],
        "Destroyed": ["gone-1@10.0.0.8"]}
put("snapshot", "two-channels", part)

for target_dir in sorted((ROOT / "fuzz" / "regressions").glob("*")):
    for p in sorted(target_dir.glob("*")):
        put(target_dir.name, f"regression-{p.name}", p.read_bytes())
