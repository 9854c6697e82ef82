//! The order desk's endpoints: check, reserve, release.

use super::*;

#[utoipa::path(post, path = "/v1/check", request_body = CheckBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Checked; a check writes nothing, so nothing is stored")),
    responses(
        (status = 200, description = "The answer, allowed or not", body = CheckAnswer),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 413, description = "Body over 256 MiB", body = ErrorBody), Denied))]
/// `check`: never writes; 200 whenever it answers.
pub async fn check(State(state): Shared, headers: HeaderMap, bytes: Bytes) -> Response {
    let trust = state.trust_client_as_of;
    let key = headers.get("idempotency-key").cloned();
    crate::service::read(state, &headers, Permission::Desk, move |desk| {
        settle((|| {
            if let Some(key) = &key {
                crate::service::idempotency_key(key)?;
            }
            let b: CheckBody = body(&bytes)?;
            let as_of = crate::service::as_of(trust, b.as_of.as_deref())?;
            let request = commands::parse_request(
                &b.chip,
                &b.market,
                &b.units.to_string(),
                &b.date,
                b.customer.as_deref(),
                b.lot.as_deref(),
            )
            .map_err(failed)?;
            let answer = desk.check(&request, as_of).map_err(failed)?;
            Ok(Reply::json(200, &answer.to_json()))
        })())
    })
    .await
}

#[utoipa::path(post, path = "/v1/reserve", request_body = ReserveBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "Held (or already held)", body = CheckAnswer),
        (status = 409, description = "Refused by a rule", body = CheckAnswer),
        (status = 400, description = "Bad input", body = ErrorBody),
        Denied, PostRefused))]
/// `reserve`: a hold, durable before the answer.
pub async fn reserve(State(state): Shared, headers: HeaderMap, uri: Uri, bytes: Bytes) -> Response {
    json_write::<ReserveBody>(
        state,
        headers,
        uri,
        bytes,
        Permission::Desk,
        |ledger, b, as_of| {
            let order = commands::parse_order_ref(&b.order)?;
            let request = commands::parse_request(
                &b.chip,
                &b.market,
                &b.units.to_string(),
                &b.date,
                b.customer.as_deref(),
                b.lot.as_deref(),
            )?;
            let ttl = b.ttl_days.unwrap_or(crate::desk::TTL_DAYS_DEFAULT);
            let answer = crate::desk::reserve(ledger, &order, &request, ttl, as_of)?;
            Ok((u8::from(!answer.allowed), answer.to_json()))
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/release", request_body = ReleaseBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "Released, or already ended", body = ReleaseAnswer),
        (status = 400, description = "Bad input (an order never reserved)", body = ErrorBody),
        Denied, PostRefused))]
/// `release`: ends an order's active hold.
pub async fn release(State(state): Shared, headers: HeaderMap, uri: Uri, bytes: Bytes) -> Response {
    json_write::<ReleaseBody>(
        state,
        headers,
        uri,
        bytes,
        Permission::Desk,
        |ledger, b, as_of| {
            let order = commands::parse_order_ref(&b.order)?;
            let released = crate::desk::release(ledger, &order, as_of)?;
            Ok((0, commands::released_json(&released)))
        },
    )
    .await
}
