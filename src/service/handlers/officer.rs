//! The compliance officer's JSON writes: remit, close, policy withdraw, screening clear.

use super::*;

#[utoipa::path(post, path = "/v1/remit", request_body = RemitBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "Recorded (or already recorded), or reversed", content_type = "application/json"),
        (status = 400, description = "Bad input", body = ErrorBody),
        Denied, PostRefused))]
/// `remit`, or with `reverse` `remit --reverse`.
pub async fn remit(State(state): Shared, headers: HeaderMap, uri: Uri, bytes: Bytes) -> Response {
    json_write::<RemitBody>(
        state,
        headers,
        uri,
        bytes,
        Permission::Officer,
        |ledger, b, as_of| {
            let missing = |what: &str| crate::Error::BadInput(what.to_string());
            if b.reverse {
                if b.amount.is_some() || b.paid_on.is_some() {
                    return Err(missing(
                        "a reversal takes period, reference and reason only",
                    ));
                }
                let reason = b.reason.ok_or_else(|| missing("reverse needs a reason"))?;
                let reversal =
                    commands::remit_reverse(ledger, &b.period, &b.reference, &reason, as_of)?;
                return Ok((0, reversal.to_json()));
            }
            if b.reason.is_some() {
                return Err(missing("reason goes with reverse"));
            }
            let (Some(amount), Some(paid_on)) = (b.amount, b.paid_on) else {
                return Err(missing(
                    "remit takes amount and paid_on, or reverse with reason",
                ));
            };
            let payment =
                commands::remit(ledger, &b.period, &amount, &paid_on, &b.reference, as_of)?;
            Ok((0, payment.to_json()))
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/close", request_body = CloseBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "Closed, or already closed", content_type = "application/json"),
        (status = 409, description = "The period is not over", body = ErrorBody),
        (status = 400, description = "Bad input", body = ErrorBody),
        Denied, PostRefused))]
/// `close`: seals a period that is over.
pub async fn close(State(state): Shared, headers: HeaderMap, uri: Uri, bytes: Bytes) -> Response {
    json_write::<CloseBody>(
        state,
        headers,
        uri,
        bytes,
        Permission::Officer,
        |ledger, b, as_of| {
            let closed = commands::close(ledger, &b.period, as_of)?;
            Ok((0, commands::closed_json(&closed)))
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/policy/withdraw", request_body = WithdrawBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "Withdrawn", content_type = "application/json"),
        (status = 400, description = "Bad input", body = ErrorBody),
        Denied, PostRefused))]
/// `policy withdraw`.
pub async fn withdraw(
    State(state): Shared,
    headers: HeaderMap,
    uri: Uri,
    bytes: Bytes,
) -> Response {
    json_write::<WithdrawBody>(
        state,
        headers,
        uri,
        bytes,
        Permission::Officer,
        |ledger, b, as_of| {
            let (value, _) =
                commands::withdraw(ledger, &b.chip, &b.effective_from, &b.reason, as_of)?;
            Ok((0, value))
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/screening/clear", request_body = ClearBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "Cleared, or already cleared", content_type = "application/json"),
        (status = 400, description = "Bad input", body = ErrorBody),
        Denied, PostRefused))]
/// `screening clear`.
pub async fn screening_clear(
    State(state): Shared,
    headers: HeaderMap,
    uri: Uri,
    bytes: Bytes,
) -> Response {
    json_write::<ClearBody>(
        state,
        headers,
        uri,
        bytes,
        Permission::Officer,
        |ledger, b, as_of| {
            let clearance = commands::screening_clear(
                ledger,
                &b.customer,
                &b.list,
                &b.entry,
                &b.reason,
                as_of,
            )?;
            Ok((0, commands::clearance_json(&clearance)))
        },
    )
    .await
}
