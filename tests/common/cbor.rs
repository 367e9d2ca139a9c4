//! CloudWatch's Smithy RPC v2 CBOR protocol for the forwarder: a CBOR
//! request goes to moto as AWS JSON 1.0 and the JSON answer comes back as
//! CBOR (moto only knows CloudWatch's JSON and query protocols).

use super::upstream_call;
use serde_json::{Map, Value};

/// CloudWatch's Smithy RPC v2 CBOR request of operation `op` (its
/// `headers` and `body`) sent upstream as AWS JSON 1.0, the JSON answer
/// back as CBOR: the status line, headers and body.
pub(super) fn call(
    upstream: &str,
    headers: &[(String, String)],
    body: &[u8],
    op: &str,
) -> (String, Vec<(String, String)>, Vec<u8>) {
    let json = cbor_to_json(&mut &body[..]).unwrap_or(Value::Object(Map::new()));
    let mut h: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| {
            !["content-type", "smithy-protocol", "accept"]
                .iter()
                .any(|n| k.eq_ignore_ascii_case(n))
        })
        .cloned()
        .collect();
    h.push(("Content-Type".into(), "application/x-amz-json-1.0".into()));
    h.push((
        "X-Amz-Target".into(),
        format!("GraniteServiceVersion20100801.{op}"),
    ));
    let body = serde_json::to_vec(&json).unwrap();
    let (status, _, answer) = upstream_call(upstream, "POST", "/", &h, &body);
    let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Object(Map::new()));
    let mut cbor = Vec::new();
    json_to_cbor(&answer, false, &mut cbor);
    let headers = vec![
        ("Content-Type".into(), "application/cbor".into()),
        ("smithy-protocol".into(), "rpc-v2-cbor".into()),
    ];
    (status, headers, cbor)
}

/// The argument of a CBOR head byte's additional information (`None`: an
/// indefinite length).
fn arg(r: &mut &[u8], info: u8) -> Option<Option<u64>> {
    let mut take = |n: usize| -> Option<u64> {
        let (bytes, rest) = r.split_at_checked(n)?;
        *r = rest;
        Some(bytes.iter().fold(0u64, |a, b| a << 8 | *b as u64))
    };
    Some(match info {
        0..=23 => Some(info as u64),
        24 => Some(take(1)?),
        25 => Some(take(2)?),
        26 => Some(take(4)?),
        27 => Some(take(8)?),
        31 => None,
        _ => return None,
    })
}

fn half(bits: u16) -> f64 {
    let (sign, exp, frac) = (bits >> 15, (bits >> 10) & 0x1f, (bits & 0x3ff) as f64);
    let v = match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e as i32 - 15),
    };
    if sign == 1 {
        -v
    } else {
        v
    }
}

/// One CBOR item as JSON (timestamps, tag 1, as their epoch seconds).
fn cbor_to_json(r: &mut &[u8]) -> Option<Value> {
    let (&head, rest) = r.split_first()?;
    *r = rest;
    let (major, info) = (head >> 5, head & 0x1f);
    if major == 7 {
        return Some(match info {
            20 => Value::Bool(false),
            21 => Value::Bool(true),
            22 | 23 => Value::Null,
            25 => Value::from(half(arg(r, 25)?? as u16)),
            26 => Value::from(f32::from_bits(arg(r, 26)?? as u32) as f64),
            27 => Value::from(f64::from_bits(arg(r, 27)??)),
            _ => return None,
        });
    }
    let n = arg(r, info)?;
    let items =
        |r: &mut &[u8], n: Option<u64>, each: &mut dyn FnMut(&mut &[u8]) -> Option<()>| match n {
            Some(n) => (0..n).try_for_each(|_| each(r)),
            None => {
                while r.first() != Some(&0xff) {
                    each(r)?;
                }
                *r = &r[1..];
                Some(())
            }
        };
    Some(match major {
        0 => Value::from(n?),
        1 => Value::from(-1 - n? as i64),
        2 | 3 => {
            let mut text = Vec::new();
            match n {
                Some(n) => {
                    let (s, rest) = r.split_at_checked(n as usize)?;
                    text.extend_from_slice(s);
                    *r = rest;
                }
                None => items(r, None, &mut |r| {
                    let Value::String(s) = cbor_to_json(r)? else {
                        return None;
                    };
                    text.extend_from_slice(s.as_bytes());
                    Some(())
                })?,
            }
            Value::String(String::from_utf8_lossy(&text).into_owned())
        }
        4 => {
            let mut list = Vec::new();
            items(r, n, &mut |r| {
                list.push(cbor_to_json(r)?);
                Some(())
            })?;
            Value::Array(list)
        }
        5 => {
            let mut map = Map::new();
            items(r, n, &mut |r| {
                let Value::String(k) = cbor_to_json(r)? else {
                    return None;
                };
                map.insert(k, cbor_to_json(r)?);
                Some(())
            })?;
            Value::Object(map)
        }
        6 => cbor_to_json(r)?, // tag 1 (a timestamp): its epoch seconds
        _ => return None,
    })
}

fn cbor_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend(n.to_be_bytes());
        }
    }
}

/// JSON as CBOR. Numbers are doubles (every number CloudWatch's
/// GetMetricData and PutMetricData answer with is a double or a
/// timestamp), and under a key `Timestamps` or `Timestamp` timestamps (tag 1).
fn json_to_cbor(v: &Value, timestamp: bool, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0xf6),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Number(n) => {
            if timestamp {
                cbor_head(6, 1, out);
            }
            out.push(0xfb);
            out.extend(n.as_f64().unwrap_or(0.0).to_be_bytes());
        }
        Value::String(s) => {
            cbor_head(3, s.len() as u64, out);
            out.extend(s.as_bytes());
        }
        Value::Array(a) => {
            cbor_head(4, a.len() as u64, out);
            for item in a {
                json_to_cbor(item, timestamp, out);
            }
        }
        Value::Object(m) => {
            cbor_head(5, m.len() as u64, out);
            for (k, item) in m {
                json_to_cbor(&Value::String(k.clone()), false, out);
                json_to_cbor(item, k == "Timestamps" || k == "Timestamp", out);
            }
        }
    }
}
