//! The channel in the names of ecallmgr 5.x's `#channel` record
//! (`kazoo-ecallmgr/src/ecallmgr.hrl`): what `channels_req` answers, field by
//! field, for the `Fields` a requester names (`ecallmgr_fs_channels:field_mapper/1`).
//! Undefined fields are left out, as `kz_json:from_map/1` drops `undefined`.

use super::json::Obj;
use crate::registry::Channel;
use crate::registry::channel::{DEFAULT_CONTEXT, DEFAULT_DIALPLAN, DEFAULT_PROFILE};

/// ecallmgr's default `Fields` (`default_fields/0`).
pub const DEFAULT_FIELDS: [&str; 4] = ["switch_url", "is_onhold", "destination", "other_leg"];

/// Writes one field of a channel under its name, nothing when unknown.
type Field = fn(&mut Obj<'_>, &'static str, &Channel);

/// Every field of the record, in its order, with its value.
pub const FIELDS: [(&str, Field); 49] = [
    ("uuid", |o, k, ch| o.str(k, &ch.uuid)),
    ("destination", |o, k, ch| o.opt_str(k, ch.destination())),
    ("request", |o, k, ch| o.opt_str(k, ch.request().as_deref())),
    ("direction", |o, k, ch| {
        o.opt_str(k, ch.direction.as_deref())
    }),
    ("account_id", |o, k, ch| {
        o.opt_str(k, ch.account_id.as_deref())
    }),
    ("account_billing", |o, k, ch| {
        o.opt_str(k, ch.account_billing.as_deref())
    }),
    ("authorizing_id", |o, k, ch| {
        o.opt_str(k, ch.authorizing_id.as_deref())
    }),
    ("authorizing_type", |o, k, ch| {
        o.opt_str(k, ch.authorizing_type.as_deref())
    }),
    ("is_authorized", |o, k, ch| o.bool(k, ch.channel_authorized)),
    ("owner_id", |o, k, ch| o.opt_str(k, ch.owner_id.as_deref())),
    ("resource_id", |o, k, ch| {
        o.opt_str(k, ch.resource_id.as_deref())
    }),
    ("presence_id", |o, k, ch| o.opt_str(k, ch.presence_id())),
    ("fetch_id", |o, k, ch| o.opt_str(k, ch.fetch_id())),
    ("bridge_id", |o, k, ch| o.opt_str(k, ch.bridge_id())),
    ("reseller_id", |o, k, ch| {
        o.opt_str(k, ch.reseller_id.as_deref())
    }),
    ("reseller_billing", |o, k, ch| {
        o.opt_str(k, ch.reseller_billing.as_deref())
    }),
    ("realm", |o, k, ch| o.opt_str(k, ch.realm.as_deref())),
    ("username", |o, k, ch| o.opt_str(k, ch.username.as_deref())),
    // The record's default; only ecallmgr's own call control sets it.
    ("import_moh", |o, k, _ch| o.bool(k, false)),
    ("answered", |o, k, ch| o.bool(k, ch.answered)),
    ("other_leg", |o, k, ch| {
        o.opt_str(k, ch.other_leg.as_deref())
    }),
    ("node", |o, k, ch| o.opt_str(k, ch.switch_nodename())),
    // Set when ecallmgr moves a call between its FreeSWITCH nodes: never ours.
    ("former_node", |_o, _k, _ch| {}),
    ("timestamp", |o, k, ch| o.uint(k, ch.timestamp)),
    ("profile", |o, k, _ch| o.str(k, DEFAULT_PROFILE)),
    ("context", |o, k, _ch| o.str(k, DEFAULT_CONTEXT)),
    ("dialplan", |o, k, _ch| o.str(k, DEFAULT_DIALPLAN)),
    ("precedence", |o, k, ch| o.int(k, ch.precedence)),
    // Whether the answering ecallmgr controls the call: never true for us.
    ("handling_locally", |o, k, _ch| o.bool(k, false)),
    ("to_tag", |o, k, ch| o.opt_str(k, ch.to_tag())),
    ("from_tag", |o, k, ch| o.opt_str(k, ch.from_tag())),
    ("interaction_id", |o, k, ch| {
        o.opt_str(k, ch.interaction_id())
    }),
    ("callee_number", |o, k, ch| {
        o.opt_str(k, ch.callee_id_number())
    }),
    ("callee_name", |o, k, ch| o.opt_str(k, ch.callee_id_name())),
    ("caller_number", |o, k, ch| {
        o.opt_str(k, ch.caller_id_number())
    }),
    ("caller_name", |o, k, ch| o.opt_str(k, ch.caller_id_name())),
    ("is_loopback", |o, k, ch| o.bool(k, ch.is_loopback)),
    ("loopback_leg_name", |o, k, ch| {
        o.opt_str(k, ch.loopback_leg_name.as_deref())
    }),
    ("loopback_other_leg", |o, k, ch| {
        o.opt_str(k, ch.loopback_other_leg())
    }),
    ("callflow_id", |o, k, ch| {
        o.opt_str(k, ch.callflow_id.as_deref())
    }),
    ("is_onhold", |o, k, ch| o.bool(k, ch.is_onhold)),
    ("recording_status", |o, k, ch| {
        if let Some(r) = ch.recordings() {
            r.write(o.key(k))
        }
    }),
    ("cavs", |o, k, ch| {
        if let Some(v) = &ch.custom_application_vars {
            v.write(o.key(k))
        }
    }),
    ("ccvs", |o, k, ch| {
        if let Some(v) = &ch.custom_channel_vars {
            v.write(o.key(k))
        }
    }),
    ("cshs", |o, k, ch| {
        if let Some(v) = ch.sip_headers() {
            v.write(o.key(k))
        }
    }),
    ("cahs", |o, k, ch| {
        if let Some(v) = ch.auth_headers() {
            v.write(o.key(k))
        }
    }),
    ("from", |o, k, ch| o.opt_str(k, ch.from())),
    ("to", |o, k, ch| o.opt_str(k, ch.to())),
    ("switch_url", |o, k, ch| {
        o.opt_str(k, ch.switch_url.as_deref())
    }),
];

/// Which fields a request asked for: a bit per [`FIELDS`] entry. Names that are
/// no field of the record are ignored, as ecallmgr's filter ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSet(u64);

impl FieldSet {
    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut bits = 0;
        for name in names {
            if let Some(i) = FIELDS.iter().position(|(f, _)| *f == name) {
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
    for (i, (name, field)) in FIELDS.iter().enumerate() {
        if fields.has(i) {
            field(&mut o, name, ch);
        }
    }
    o.close();
}
