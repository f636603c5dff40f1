//! The channel in the names of ecallmgr 5.x's `#channel` record
//! (`kazoo-ecallmgr/src/ecallmgr.hrl`): what `channels_req` answers, field by
//! field, for the `Fields` a requester names (`ecallmgr_fs_channels:field_mapper/1`).
//! Undefined fields are left out, as `kz_json:from_map/1` drops `undefined`.

use super::json::Obj;
use crate::registry::Channel;
use crate::registry::channel::{DEFAULT_CONTEXT, DEFAULT_DIALPLAN, DEFAULT_PROFILE};

/// ecallmgr's default `Fields` (`default_fields/0`).
pub const DEFAULT_FIELDS: [&str; 4] = ["switch_url", "is_onhold", "destination", "other_leg"];

/// Every field of the record, in its order.
pub const FIELDS: [&str; 49] = [
    "uuid",
    "destination",
    "request",
    "direction",
    "account_id",
    "account_billing",
    "authorizing_id",
    "authorizing_type",
    "is_authorized",
    "owner_id",
    "resource_id",
    "presence_id",
    "fetch_id",
    "bridge_id",
    "reseller_id",
    "reseller_billing",
    "realm",
    "username",
    "import_moh",
    "answered",
    "other_leg",
    "node",
    "former_node",
    "timestamp",
    "profile",
    "context",
    "dialplan",
    "precedence",
    "handling_locally",
    "to_tag",
    "from_tag",
    "interaction_id",
    "callee_number",
    "callee_name",
    "caller_number",
    "caller_name",
    "is_loopback",
    "loopback_leg_name",
    "loopback_other_leg",
    "callflow_id",
    "is_onhold",
    "recording_status",
    "cavs",
    "ccvs",
    "cshs",
    "cahs",
    "from",
    "to",
    "switch_url",
];

/// Which fields a request asked for: a bit per [`FIELDS`] entry. Names that are
/// no field of the record are ignored, as ecallmgr's filter ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSet(u64);

impl FieldSet {
    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut bits = 0;
        for name in names {
            if let Some(i) = FIELDS.iter().position(|f| *f == name) {
                bits |= 1 << i;
            }
        }
        Self(bits)
    }

    pub fn default_set() -> Self {
        Self::of(DEFAULT_FIELDS)
    }

    fn has(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }
}

/// Writes the channel's requested fields as one object.
pub fn write(out: &mut Vec<u8>, ch: &Channel, fields: FieldSet) {
    let mut o = Obj::open(out);
    for (i, name) in FIELDS.iter().enumerate() {
        if fields.has(i) {
            field(&mut o, name, ch);
        }
    }
    o.close();
}

/// One field's value; nothing when the channel does not know it.
fn field(o: &mut Obj<'_>, name: &'static str, ch: &Channel) {
    let s = |o: &mut Obj<'_>, v: Option<&str>| o.opt_str(name, v);
    match name {
        "uuid" => o.str(name, &ch.uuid),
        "destination" => s(o, ch.destination()),
        "request" => s(o, ch.request()),
        "direction" => s(o, ch.direction.as_deref()),
        "account_id" => s(o, ch.account_id.as_deref()),
        "account_billing" => s(o, ch.account_billing.as_deref()),
        "authorizing_id" => s(o, ch.authorizing_id.as_deref()),
        "authorizing_type" => s(o, ch.authorizing_type.as_deref()),
        "is_authorized" => o.bool(name, ch.channel_authorized),
        "owner_id" => s(o, ch.owner_id.as_deref()),
        "resource_id" => s(o, ch.resource_id.as_deref()),
        "presence_id" => s(o, ch.presence_id()),
        "fetch_id" => s(o, ch.fetch_id()),
        "bridge_id" => s(o, ch.bridge_id()),
        "reseller_id" => s(o, ch.reseller_id.as_deref()),
        "reseller_billing" => s(o, ch.reseller_billing.as_deref()),
        "realm" => s(o, ch.realm.as_deref()),
        "username" => s(o, ch.username.as_deref()),
        // The record's default; only ecallmgr's own call control sets it.
        "import_moh" => o.bool(name, false),
        "answered" => o.bool(name, ch.answered),
        "other_leg" => s(o, ch.other_leg.as_deref()),
        "node" => s(o, ch.switch_nodename()),
        // Set by ecallmgr when a call moves between its FreeSWITCH nodes: never ours.
        "former_node" => {}
        "timestamp" => o.uint(name, ch.timestamp),
        "profile" => o.str(name, DEFAULT_PROFILE),
        "context" => o.str(name, DEFAULT_CONTEXT),
        "dialplan" => o.str(name, DEFAULT_DIALPLAN),
        "precedence" => o.int(name, ch.precedence),
        // Whether the answering ecallmgr controls the call: never true for us.
        "handling_locally" => o.bool(name, false),
        "to_tag" => s(o, ch.to_tag()),
        "from_tag" => s(o, ch.from_tag()),
        "interaction_id" => s(o, ch.interaction_id()),
        "callee_number" => s(o, ch.callee_id_number()),
        "callee_name" => s(o, ch.callee_id_name()),
        "caller_number" => s(o, ch.caller_id_number()),
        "caller_name" => s(o, ch.caller_id_name()),
        "is_loopback" => o.bool(name, ch.is_loopback),
        "loopback_leg_name" => s(o, ch.loopback_leg_name.as_deref()),
        "loopback_other_leg" => s(o, ch.loopback_other_leg()),
        "callflow_id" => s(o, ch.callflow_id.as_deref()),
        "is_onhold" => o.bool(name, ch.is_onhold),
        "recording_status" => {
            if let Some(r) = ch.recordings() {
                r.write(o.key(name));
            }
        }
        "cavs" => {
            if let Some(v) = &ch.custom_application_vars {
                v.write(o.key(name));
            }
        }
        "ccvs" => {
            if let Some(v) = &ch.custom_channel_vars {
                v.write(o.key(name));
            }
        }
        "cshs" => {
            if let Some(v) = ch.sip_headers() {
                v.write(o.key(name));
            }
        }
        "cahs" => {
            if let Some(v) = ch.auth_headers() {
                v.write(o.key(name));
            }
        }
        "from" => s(o, ch.from()),
        "to" => s(o, ch.to()),
        "switch_url" => s(o, ch.switch_url.as_deref()),
        _ => unreachable!("{name} is in FIELDS"),
    }
}
