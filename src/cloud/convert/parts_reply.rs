//! `GetRobotParts` answers, decoded for reading configs once.
//!
//! Viam sends each part's config twice: as the `robot_config` `Struct` (field 5) and as the
//! JSON text `robot_config_json` (field 18). fleetform uses the text (it keeps key order and
//! number forms), so decoding the `Struct` into its tree of maps, only to drop it, was most of
//! the client's work per read on fleets of kilobyte configs. [`RobotPartReply`] reads the same
//! bytes with field 5 kept as its encoded bytes: the `Struct` is decoded only for a part whose
//! JSON text is absent or not a JSON object. Fields fleetform does not use (the part secret,
//! DNS names, user-supplied info, seconds since online) are skipped by the decoder, so the part
//! secret is never held in memory. Everything else is exactly what [`super::part`] makes of a
//! full `RobotPart`.

use super::{compact_config_from, pb};
use crate::model::Part;
use prost::Message;

/// `viam.app.v1.GetRobotPartsResponse` with [`RobotPartReply`] parts.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct GetRobotPartsReply {
    #[prost(message, repeated, tag = "1")]
    pub parts: Vec<RobotPartReply>,
}

/// `viam.app.v1.RobotPart` with `robot_config` (a `google.protobuf.Struct`) left encoded.
/// Tags and wire types are those of `RobotPart` (an enum is a varint like `int32`; a message
/// is length-delimited like `bytes`).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct RobotPartReply {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub robot: String,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub robot_config: Option<Vec<u8>>,
    #[prost(message, optional, tag = "6")]
    pub last_access: Option<prost_types::Timestamp>,
    #[prost(bool, tag = "8")]
    pub main_part: bool,
    #[prost(string, tag = "12")]
    pub location_id: String,
    #[prost(message, optional, tag = "13")]
    pub created_on: Option<prost_types::Timestamp>,
    #[prost(message, optional, tag = "15")]
    pub last_updated: Option<prost_types::Timestamp>,
    #[prost(int32, tag = "16")]
    pub online_state: i32,
    #[prost(string, optional, tag = "18")]
    pub robot_config_json: Option<String>,
}

/// The part of a reply, as [`super::part`] makes it of the full message. An error only when
/// the config has to come from a `Struct` that does not decode.
pub(crate) fn part_from_reply(p: RobotPartReply) -> Result<Part, prost::DecodeError> {
    let mut bad_struct = None;
    let config = compact_config_from(p.robot_config_json.as_deref(), || {
        let bytes = p.robot_config?;
        prost_types::Struct::decode(bytes.as_slice())
            .map_err(|e| bad_struct = Some(e))
            .ok()
    });
    if let Some(e) = bad_struct {
        return Err(e);
    }
    // Every other field exactly as the full message converts.
    let mut part = super::part(pb::RobotPart {
        id: p.id,
        name: p.name,
        robot: p.robot,
        last_access: p.last_access,
        main_part: p.main_part,
        location_id: p.location_id,
        created_on: p.created_on,
        last_updated: p.last_updated,
        online_state: p.online_state,
        ..Default::default()
    });
    part.config = config;
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full(config: Option<serde_json::Value>, text: Option<&str>) -> pb::RobotPart {
        let ts = |s| {
            Some(prost_types::Timestamp {
                seconds: s,
                nanos: 7,
            })
        };
        pb::RobotPart {
            id: "p1".into(),
            name: "arm-main".into(),
            secret: "s3cr3t-part".into(),
            robot: "m1".into(),
            robot_config: config.map(|c| super::super::struct_from_json(&c, "config").unwrap()),
            last_access: ts(3),
            user_supplied_info: Some(prost_types::Struct::default()),
            main_part: true,
            fqdn: "f".into(),
            dns_name: "d".into(),
            local_fqdn: "l".into(),
            location_id: "loc".into(),
            created_on: ts(1),
            secrets: vec![pb::SharedSecret {
                id: "sid".into(),
                secret: "s3cr3t-shared".into(),
                created_on: ts(1),
                state: pb::shared_secret::State::Enabled as i32,
            }],
            last_updated: ts(2),
            online_state: pb::OnlineState::Online as i32,
            seconds_since_online: 5,
            robot_config_json: text.map(String::from),
        }
    }

    /// Decoding the bytes of a full answer as a reply gives the part the full message gives.
    fn same_as_full(p: pb::RobotPart) -> Part {
        let bytes = pb::GetRobotPartsResponse {
            parts: vec![p.clone()],
        }
        .encode_to_vec();
        let reply = GetRobotPartsReply::decode(bytes.as_slice()).unwrap();
        let [one] = <[RobotPartReply; 1]>::try_from(reply.parts).unwrap();
        let lazy = part_from_reply(one).unwrap();
        assert_eq!(lazy, super::super::part(p));
        lazy
    }

    #[test]
    fn reply_parts_equal_full_parts() {
        let cfg = json!({"b": 1, "a": {"x": [1.5, "s", null, true]}});
        // The text wins: its key order and number forms are kept.
        let p = same_as_full(full(Some(cfg.clone()), Some(r#"{"b": 1.0, "a": {}}"#)));
        assert_eq!(
            serde_json::to_string(&p.config).unwrap(),
            r#"{"b":1.0,"a":{}}"#
        );
        assert_eq!(p.online_state, crate::model::OnlineState::Online);
        assert!(p.main && p.last_updated.is_some() && p.last_access.is_some());
        // No text, or text that is not an object: the struct.
        for text in [None, Some("[1]"), Some("{not json")] {
            let p = same_as_full(full(Some(cfg.clone()), text));
            assert_eq!(
                p.config.to_value(),
                json!({"a": {"x": [1.5, "s", null, true]}, "b": 1})
            );
        }
        // Neither: `{}`; an empty struct: `{}`.
        assert_eq!(same_as_full(full(None, None)).config.to_value(), json!({}));
        assert_eq!(
            same_as_full(full(Some(json!({})), None)).config.to_value(),
            json!({})
        );
    }

    #[test]
    fn a_struct_that_does_not_decode_is_an_error_only_when_needed() {
        let reply = |text: Option<&str>| RobotPartReply {
            robot_config: Some(vec![0x0a, 0xff]),
            robot_config_json: text.map(String::from),
            ..Default::default()
        };
        assert!(part_from_reply(reply(None)).is_err());
        assert_eq!(
            part_from_reply(reply(Some(r#"{"a": 1}"#)))
                .unwrap()
                .config
                .to_value(),
            json!({"a": 1})
        );
    }
}
