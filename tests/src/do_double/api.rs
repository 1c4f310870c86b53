//! Request handling of the API and metadata listeners.

use std::{
    net::Ipv4Addr,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{json, Value};

use super::{
    http::{Handler, Reply, Request, Response},
    iso8601, Action, ActionKind, ActionStatus, DropletSpec, Flavor, Inner, Outage, RecordedRequest,
    SameHolder, Scope, Service, State, UnassignedIpAddress,
};

const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const PROJECT_ID: &str = "746c6152-2fa2-11ed-92d3-27aaa54e4988";

/// An API error: status, `id`, message.
struct ApiError(u16, &'static str, String);

impl ApiError {
    fn not_found() -> Self {
        Self(
            404,
            "not_found",
            "The resource you requested could not be found.".into(),
        )
    }
    fn unprocessable(msg: impl Into<String>) -> Self {
        Self(422, "unprocessable_entity", msg.into())
    }
}

fn region_json(slug: &str) -> Value {
    let name = match slug {
        "nyc1" => "New York 1",
        "nyc2" => "New York 2",
        "nyc3" => "New York 3",
        "ams3" => "Amsterdam 3",
        "sfo3" => "San Francisco 3",
        "fra1" => "Frankfurt 1",
        "lon1" => "London 1",
        "sgp1" => "Singapore 1",
        "tor1" => "Toronto 1",
        "blr1" => "Bangalore 1",
        "syd1" => "Sydney 1",
        other => other,
    };
    json!({
        "name": name,
        "slug": slug,
        "features": ["private_networking", "backups", "ipv6", "metadata"],
        "available": true,
        "sizes": ["s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-4gb"],
    })
}

fn droplet_json(st: &State, id: u64) -> Value {
    let Some(d) = st.droplets.get(&id) else {
        return json!({ "id": id });
    };
    let held: Vec<String> = st
        .ips
        .iter()
        .filter(|(_, s)| s.holder == Some(id))
        .map(|(ip, _)| ip.to_string())
        .collect();
    let v4 = [
        json!({"ip_address": d.public_ipv4.to_string(), "netmask": "255.255.240.0",
               "gateway": gateway(d.public_ipv4), "type": "public"}),
        json!({"ip_address": d.private_ipv4.to_string(), "netmask": "255.255.0.0",
               "gateway": "", "type": "private"}),
        json!({"ip_address": d.anchor_ipv4.to_string(), "netmask": "255.255.0.0",
               "gateway": gateway(d.anchor_ipv4), "type": "public"}),
    ];
    json!({
        "id": d.id,
        "name": d.name,
        "memory": 1024,
        "vcpus": 1,
        "disk": 25,
        "locked": false,
        "status": "active",
        "kernel": null,
        "created_at": "2024-01-01T00:00:00Z",
        "features": ["private_networking", "monitoring"],
        "backup_ids": [],
        "next_backup_window": null,
        "snapshot_ids": [],
        "image": {"id": 129_211_873, "name": "22.04 (LTS) x64", "distribution": "Ubuntu",
                  "slug": "ubuntu-22-04-x64", "public": true, "regions": [d.region],
                  "type": "base", "min_disk_size": 7, "size_gigabytes": 2.36, "status": "available"},
        "volume_ids": [],
        "size": {"slug": "s-1vcpu-1gb", "memory": 1024, "vcpus": 1, "disk": 25,
                 "transfer": 1.0, "price_monthly": 6.0, "price_hourly": 0.008_93,
                 "regions": [d.region], "available": true},
        "size_slug": "s-1vcpu-1gb",
        "networks": {"v4": v4, "v6": []},
        "region": region_json(&d.region),
        "tags": [],
        "vpc_uuid": "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
        "reserved_ips": held,
    })
}

fn gateway(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    Ipv4Addr::new(o[0], o[1], o[2], 1).to_string()
}

fn ip_json(st: &State, ip: Ipv4Addr) -> Option<Value> {
    let s = st.ips.get(&ip)?;
    let locked = s.pending.is_some() || st.faults.pending_event > 0;
    Some(json!({
        "ip": ip.to_string(),
        "region": region_json(&s.region),
        "droplet": s.holder.map(|h| droplet_json(st, h)),
        "locked": locked,
        "project_id": PROJECT_ID,
    }))
}

fn action_json(a: &Action) -> Value {
    json!({
        "id": a.id,
        "status": match a.status {
            ActionStatus::InProgress => "in-progress",
            ActionStatus::Completed => "completed",
            ActionStatus::Errored => "errored",
        },
        "type": match a.kind {
            ActionKind::Assign => "assign_ip",
            ActionKind::Unassign => "unassign_ip",
        },
        "started_at": iso8601(a.started),
        "completed_at": a.completed.map(iso8601),
        "resource_id": u32::from(a.ip),
        "resource_type": a.flavor.key(),
        "region": region_json(&a.region),
        "region_slug": a.region,
    })
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The `ratelimit-*` headers and, when over a limit, the 429's `retry-after` (if any).
struct RateOutcome {
    headers: [(String, String); 3],
    reject: Option<Option<u64>>,
}

fn rate_check(st: &mut State, key: &str) -> RateOutcome {
    let now = Instant::now();
    let rate = st.config.rate.clone();
    let q = st.rate.entry(key.to_string()).or_default();
    while q
        .front()
        .is_some_and(|t| now.duration_since(*t) >= rate.hour)
    {
        q.pop_front();
    }
    let in_minute: Vec<Instant> = q
        .iter()
        .copied()
        .filter(|t| now.duration_since(*t) < rate.minute)
        .collect();
    let reject = if q.len() >= rate.per_hour as usize {
        Some(None)
    } else if in_minute.len() >= rate.per_minute as usize {
        let oldest = in_minute.first().copied().unwrap_or(now);
        let wait = (oldest + rate.minute).saturating_duration_since(now);
        Some(Some(wait.as_secs_f64().ceil().max(1.0) as u64))
    } else {
        q.push_back(now);
        None
    };
    let remaining = (rate.per_hour as usize).saturating_sub(q.len());
    let reset = q.front().map_or(unix(SystemTime::now()), |t| {
        unix(SystemTime::now() + (*t + rate.hour).saturating_duration_since(now))
    });
    RateOutcome {
        headers: [
            ("ratelimit-limit".into(), rate.per_hour.to_string()),
            ("ratelimit-remaining".into(), remaining.to_string()),
            ("ratelimit-reset".into(), reset.to_string()),
        ],
        reject,
    }
}

fn json_response(status: u16, body: &Value, request_id: &str) -> Response {
    Response::new(status, JSON, body.to_string()).header("x-request-id", request_id)
}

fn error_response(e: &ApiError, request_id: &str) -> Response {
    let body = json!({"id": e.1, "message": e.2, "request_id": request_id});
    json_response(e.0, &body, request_id)
}

/// The API listener's handler.
pub(super) struct ApiHandler(pub Arc<Inner>);

impl Handler for ApiHandler {
    fn handle(&self, req: &Request) -> Reply {
        let inner = &*self.0;
        let (outage, latency) = {
            let st = inner.lock();
            (st.faults.outage(), st.faults.latency)
        };
        inner.pause(latency);
        let auth = req.header("authorization");
        let mut rec = RecordedRequest {
            at: SystemTime::now(),
            since_start: Duration::ZERO,
            service: Service::Api,
            method: req.method.clone(),
            path: req.path.clone(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
            status: None,
            token_present: auth.is_some(),
            token_label: None,
            request_id: None,
        };
        match outage {
            Some(Outage::Close) | Some(Outage::Hang) => {
                let mut st = inner.lock();
                inner.record(&mut st, rec);
                return if outage == Some(Outage::Close) {
                    Reply::Close
                } else {
                    Reply::Hang
                };
            }
            _ => {}
        }
        let request_id = inner.request_id();
        let mut st = inner.lock();
        let token = auth
            .and_then(|a| {
                a.strip_prefix("Bearer ")
                    .or_else(|| a.strip_prefix("bearer "))
            })
            .map(str::trim)
            .and_then(|t| st.tokens.get(t))
            .map(|t| (t.label.clone(), t.scope));
        rec.token_label = token.as_ref().map(|t| t.0.clone());
        let key = token.as_ref().map_or_else(
            || "unauthenticated".to_string(),
            |t| format!("token:{}", t.0),
        );
        let rate = rate_check(&mut st, &key);
        let result = if outage == Some(Outage::Unavailable) {
            Err(ApiError(
                503,
                "service_unavailable",
                "The service is temporarily unavailable.".into(),
            ))
        } else if st.faults.unauthorized || token.is_none() {
            Err(ApiError(
                401,
                "unauthorized",
                "Unable to authenticate you.".into(),
            ))
        } else if rate.reject.is_some() {
            Err(ApiError(
                429,
                "too_many_requests",
                "API rate limit exceeded.".into(),
            ))
        } else if st.faults.rate_limit > 0 {
            st.faults.rate_limit -= 1;
            Err(ApiError(
                429,
                "too_many_requests",
                "API rate limit exceeded.".into(),
            ))
        } else if st.faults.fail_5xx > 0 {
            st.faults.fail_5xx -= 1;
            Err(ApiError(
                500,
                "server_error",
                "Unexpected server-side error".into(),
            ))
        } else {
            let scope = token.map_or(Scope::ReadOnly, |t| t.1);
            route(&mut st, req, scope)
        };
        let mut resp = match &result {
            Ok((status, body)) => json_response(*status, body, &request_id),
            Err(e) => error_response(e, &request_id),
        };
        if resp.status == 429 {
            let retry = match rate.reject {
                Some(r) => r,
                None => Some(st.faults.rate_limit_retry_after),
            };
            if let Some(r) = retry {
                resp = resp.header("retry-after", r.to_string());
            }
        }
        for (n, v) in rate.headers {
            resp = resp.header(&n, v);
        }
        rec.status = Some(resp.status);
        rec.request_id = Some(request_id);
        inner.record(&mut st, rec);
        if resp.status == 201 {
            inner.wake.notify_all();
        }
        Reply::Send(resp)
    }

    fn hanging(&self) -> bool {
        self.0.lock().faults.outage() == Some(Outage::Hang)
    }

    fn bad_request(&self, why: &str) -> Response {
        let rid = self.0.request_id();
        let e = ApiError(400, "bad_request", format!("Malformed request: {why}."));
        error_response(&e, &rid)
    }
}

fn parse_flavor(seg: &str) -> Option<Flavor> {
    match seg {
        "reserved_ips" => Some(Flavor::Reserved),
        "floating_ips" => Some(Flavor::Floating),
        _ => None,
    }
}

fn route(st: &mut State, req: &Request, scope: Scope) -> Result<(u16, Value), ApiError> {
    let path = req.path.strip_suffix('/').unwrap_or(&req.path);
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let method = req.method.as_str();
    let get = method == "GET" || method == "HEAD";
    match segs[..] {
        ["v2", "actions", id] => get_action(st, id, None, get),
        ["v2", "droplets", id] => {
            let id: u64 = id.parse().map_err(|_| ApiError::not_found())?;
            if !st.droplets.contains_key(&id) {
                return Err(ApiError::not_found());
            }
            if !get {
                return Err(method_not_allowed());
            }
            Ok((200, json!({ "droplet": droplet_json(st, id) })))
        }
        ["v2", kind] => {
            let flavor = parse_flavor(kind).ok_or_else(ApiError::not_found)?;
            if !get {
                return Err(method_not_allowed());
            }
            let list: Vec<Value> = st.ips.keys().filter_map(|ip| ip_json(st, *ip)).collect();
            let n = list.len();
            Ok((
                200,
                json!({ format!("{}s", flavor.key()): list, "links": {}, "meta": {"total": n} }),
            ))
        }
        ["v2", kind, ip] => {
            let flavor = parse_flavor(kind).ok_or_else(ApiError::not_found)?;
            let ip: Ipv4Addr = ip.parse().map_err(|_| ApiError::not_found())?;
            let v = ip_json(st, ip).ok_or_else(ApiError::not_found)?;
            if !get {
                return Err(method_not_allowed());
            }
            Ok((200, json!({ flavor.key(): v })))
        }
        ["v2", kind, ip, "actions"] => {
            let flavor = parse_flavor(kind).ok_or_else(ApiError::not_found)?;
            let ip: Ipv4Addr = ip.parse().map_err(|_| ApiError::not_found())?;
            if !st.ips.contains_key(&ip) {
                return Err(ApiError::not_found());
            }
            match method {
                "POST" => {
                    if scope == Scope::ReadOnly {
                        return Err(ApiError(
                            403,
                            "forbidden",
                            "You do not have access for the attempted action.".into(),
                        ));
                    }
                    post_action(st, flavor, ip, &req.body).map(|a| (201, json!({ "action": a })))
                }
                "GET" | "HEAD" if st.faults.actions_404 => Err(ApiError::not_found()),
                "GET" | "HEAD" => {
                    let list: Vec<Value> = st
                        .actions
                        .values()
                        .filter(|a| a.ip == ip)
                        .map(action_json)
                        .collect();
                    let n = list.len();
                    Ok((
                        200,
                        json!({"actions": list, "links": {}, "meta": {"total": n}}),
                    ))
                }
                _ => Err(method_not_allowed()),
            }
        }
        ["v2", kind, ip, "actions", id] => {
            parse_flavor(kind).ok_or_else(ApiError::not_found)?;
            let ip: Ipv4Addr = ip.parse().map_err(|_| ApiError::not_found())?;
            get_action(st, id, Some(ip), get)
        }
        _ => Err(ApiError::not_found()),
    }
}

fn method_not_allowed() -> ApiError {
    ApiError(405, "method_not_allowed", "Method Not Allowed".into())
}

fn get_action(
    st: &State,
    id: &str,
    ip: Option<Ipv4Addr>,
    get: bool,
) -> Result<(u16, Value), ApiError> {
    let id: u64 = id.parse().map_err(|_| ApiError::not_found())?;
    if st.faults.actions_404 {
        return Err(ApiError::not_found());
    }
    let a = st.actions.get(&id).ok_or_else(ApiError::not_found)?;
    if ip.is_some_and(|ip| ip != a.ip) {
        return Err(ApiError::not_found());
    }
    if a.started_at.elapsed() < st.faults.action_404 {
        return Err(ApiError::not_found());
    }
    if !get {
        return Err(method_not_allowed());
    }
    Ok((200, json!({ "action": action_json(a) })))
}

fn post_action(
    st: &mut State,
    flavor: Flavor,
    ip: Ipv4Addr,
    body: &[u8],
) -> Result<Value, ApiError> {
    let pending_msg = match flavor {
        Flavor::Reserved => st.config.inferred.pending_event_reserved.clone(),
        Flavor::Floating => "The floating IP already has a pending event.".to_string(),
    };
    if st.faults.pending_event > 0 {
        st.faults.pending_event -= 1;
        return Err(ApiError::unprocessable(pending_msg));
    }
    let body: Value = serde_json::from_slice(body).map_err(|_| {
        ApiError(
            400,
            "bad_request",
            "Unable to parse the request body as JSON.".into(),
        )
    })?;
    let inferred = st.config.inferred.clone();
    let words = |s: &str| s.replace("{kind}", flavor.words());
    let (ip_region, holder, pending) = match st.ips.get(&ip) {
        Some(s) => (s.region.clone(), s.holder, s.pending),
        None => return Err(ApiError::not_found()),
    };
    let (kind, target) = match body.get("type").and_then(Value::as_str) {
        Some("assign") => {
            let droplet = match body.get("droplet_id") {
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
                _ => None,
            }
            .ok_or_else(|| ApiError::unprocessable("droplet_id must be a valid Droplet ID."))?;
            if pending.is_some() {
                return Err(ApiError::unprocessable(pending_msg));
            }
            let Some(d) = st.droplets.get(&droplet) else {
                return Err(if inferred.unknown_droplet_status == 404 {
                    ApiError::not_found()
                } else {
                    ApiError::unprocessable("The Droplet you specified could not be found.")
                });
            };
            if d.region != ip_region {
                return Err(ApiError::unprocessable(words(
                    "The Droplet and the {kind} must be in the same region.",
                )));
            }
            let same = holder == Some(droplet);
            if same && inferred.same_holder == SameHolder::Reject {
                return Err(ApiError::unprocessable(words(&inferred.already_assigned)));
            }
            if st
                .ips
                .iter()
                .any(|(other, s)| *other != ip && s.holder == Some(droplet))
            {
                return Err(ApiError::unprocessable(words(&inferred.already_assigned)));
            }
            let busy = st.actions.values().any(|a| {
                a.status == ActionStatus::InProgress
                    && (a.target == Some(droplet)
                        || st.ips.get(&a.ip).and_then(|s| s.holder) == Some(droplet))
            });
            if busy {
                return Err(ApiError::unprocessable(
                    "Droplet already has a pending event.",
                ));
            }
            (ActionKind::Assign, Some(droplet))
        }
        Some("unassign") => {
            if pending.is_some() {
                return Err(ApiError::unprocessable(pending_msg));
            }
            if holder.is_none() {
                return Err(ApiError::unprocessable(words(&inferred.not_assigned)));
            }
            (ActionKind::Unassign, None)
        }
        Some(_) => {
            return Err(ApiError::unprocessable(
                "The action type must be one of: assign, unassign.",
            ))
        }
        None => return Err(ApiError::unprocessable("The action type is required.")),
    };
    let id = st.next_action;
    st.next_action += 1;
    let now = Instant::now();
    let a = Action {
        id,
        kind,
        ip,
        target,
        status: ActionStatus::InProgress,
        flavor,
        region: ip_region,
        started: SystemTime::now(),
        started_at: now,
        due: now + st.config.action_delay,
        completed: None,
        finishing: false,
    };
    let v = action_json(&a);
    st.actions.insert(id, a);
    if let Some(s) = st.ips.get_mut(&ip) {
        s.pending = Some(id);
    }
    Ok(v)
}

/// A metadata listener's handler: answers as one droplet.
pub(super) struct MetadataHandler {
    pub inner: Arc<Inner>,
    pub droplet_id: u64,
}

/// Leaf paths (relative to `/metadata/`) and bodies for one droplet.
fn metadata_tree(
    d: &DropletSpec,
    held: Option<Ipv4Addr>,
    unassigned: UnassignedIpAddress,
) -> Vec<(String, String, &'static str)> {
    let active = held.is_some().to_string();
    let mut t: Vec<(String, String, &'static str)> = vec![
        ("v1/id".into(), d.id.to_string(), TEXT),
        ("v1/hostname".into(), d.name.clone(), TEXT),
        ("v1/region".into(), d.region.clone(), TEXT),
        ("v1/vendor-data".into(), String::new(), TEXT),
        ("v1/public-keys".into(), String::new(), TEXT),
    ];
    let iface = |t: &mut Vec<(String, String, &'static str)>, p: &str, ip: Ipv4Addr, mask| {
        t.push((format!("v1/interfaces/{p}/address"), ip.to_string(), TEXT));
        t.push((format!("v1/interfaces/{p}/netmask"), mask, TEXT));
        t.push((format!("v1/interfaces/{p}/gateway"), gateway(ip), TEXT));
    };
    iface(
        &mut t,
        "private/0/ipv4",
        d.private_ipv4,
        "255.255.0.0".into(),
    );
    t.push(("v1/interfaces/private/0/mac".into(), mac(d.id, 2), TEXT));
    t.push((
        "v1/interfaces/private/0/type".into(),
        "private".into(),
        TEXT,
    ));
    iface(
        &mut t,
        "public/0/ipv4",
        d.public_ipv4,
        "255.255.240.0".into(),
    );
    iface(
        &mut t,
        "public/0/anchor_ipv4",
        d.anchor_ipv4,
        "255.255.0.0".into(),
    );
    t.push(("v1/interfaces/public/0/mac".into(), mac(d.id, 1), TEXT));
    t.push(("v1/interfaces/public/0/type".into(), "public".into(), TEXT));
    for kind in ["reserved_ip", "floating_ip"] {
        t.push((format!("v1/{kind}/ipv4/active"), active.clone(), TEXT));
        match (held, unassigned) {
            (Some(ip), _) => t.push((format!("v1/{kind}/ipv4/ip_address"), ip.to_string(), TEXT)),
            (None, UnassignedIpAddress::Empty) => {
                t.push((format!("v1/{kind}/ipv4/ip_address"), String::new(), TEXT));
            }
            (None, UnassignedIpAddress::NotFound) => {}
        }
    }
    let addr = |ip: Ipv4Addr, mask: &str| json!({"ip_address": ip.to_string(), "netmask": mask, "gateway": gateway(ip)});
    let fip = |_| {
        let mut v = json!({"active": held.is_some()});
        if let Some(ip) = held {
            v["ip_address"] = json!(ip.to_string());
        }
        json!({ "ipv4": v })
    };
    let doc = json!({
        "droplet_id": d.id,
        "hostname": d.name,
        "vendor_data": "",
        "public_keys": [],
        "auth_key": "",
        "region": d.region,
        "interfaces": {
            "private": [{"ipv4": addr(d.private_ipv4, "255.255.0.0"), "mac": mac(d.id, 2),
                         "type": "private"}],
            "public": [{"ipv4": addr(d.public_ipv4, "255.255.240.0"),
                        "anchor_ipv4": addr(d.anchor_ipv4, "255.255.0.0"),
                        "mac": mac(d.id, 1), "type": "public"}],
        },
        "floating_ip": fip(()),
        "reserved_ip": fip(()),
        "dns": {"nameservers": ["67.207.67.2", "67.207.67.3"]},
        "features": {"dhcp_enabled": false},
    });
    t.push(("v1.json".into(), doc.to_string(), JSON));
    t
}

fn mac(id: u64, n: u8) -> String {
    let b = id.to_be_bytes();
    format!("de:ad:{n:02x}:{:02x}:{:02x}:{:02x}", b[5], b[6], b[7])
}

fn metadata_answer(tree: &[(String, String, &'static str)], path: &str) -> Response {
    let not_found = || Response::new(404, TEXT, "not found");
    if path == "/metadata" {
        return Response::new(301, TEXT, "").header("location", "/metadata/");
    }
    let Some(rel) = path.strip_prefix("/metadata/") else {
        return not_found();
    };
    if let Some((_, body, ct)) = tree.iter().find(|(k, _, _)| k == rel) {
        return Response::new(200, ct, body.clone());
    }
    if rel.is_empty() || rel.ends_with('/') {
        let mut children: Vec<&str> = Vec::new();
        for (k, _, _) in tree {
            if let Some(rest) = k.strip_prefix(rel) {
                let child = match rest.find('/') {
                    Some(i) => &rest[..=i],
                    None => rest,
                };
                if !children.contains(&child) {
                    children.push(child);
                }
            }
        }
        if children.is_empty() {
            return not_found();
        }
        return Response::new(200, TEXT, children.join("\n"));
    }
    let dir = format!("{rel}/");
    if tree.iter().any(|(k, _, _)| k.starts_with(&dir)) {
        return Response::new(301, TEXT, "").header("location", format!("/metadata/{dir}"));
    }
    not_found()
}

impl Handler for MetadataHandler {
    fn handle(&self, req: &Request) -> Reply {
        let inner = &*self.inner;
        let latency = inner.lock().faults.metadata_latency;
        inner.pause(latency);
        let mut st = inner.lock();
        let mut rec = RecordedRequest {
            at: SystemTime::now(),
            since_start: Duration::ZERO,
            service: Service::Metadata {
                droplet_id: self.droplet_id,
            },
            method: req.method.clone(),
            path: req.path.clone(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
            status: None,
            token_present: req.header("authorization").is_some(),
            token_label: None,
            request_id: None,
        };
        if st.faults.metadata_down {
            inner.record(&mut st, rec);
            return Reply::Close;
        }
        let resp = if req.method != "GET" && req.method != "HEAD" {
            Response::new(405, TEXT, "method not allowed")
        } else if let Some(d) = st.droplets.get(&self.droplet_id) {
            let held = st
                .ips
                .iter()
                .find(|(_, s)| s.holder == Some(self.droplet_id))
                .map(|(ip, _)| *ip);
            let tree = metadata_tree(d, held, st.config.inferred.unassigned_ip_address);
            metadata_answer(&tree, &req.path)
        } else {
            Response::new(404, TEXT, "not found")
        };
        rec.status = Some(resp.status);
        inner.record(&mut st, rec);
        Reply::Send(resp)
    }

    fn hanging(&self) -> bool {
        false
    }

    fn bad_request(&self, _why: &str) -> Response {
        Response::new(400, TEXT, "bad request")
    }
}
