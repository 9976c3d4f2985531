//! Logging in, refreshing tokens, logging out, and changing one's own password.

use actix_web::{HttpRequest, HttpResponse, post, put, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use validator::Validate;

use diesel::QueryResult;

use crate::api::{Asked, Asking};
use crate::app::AppState;
use crate::auth::jwt::Subject;
use crate::auth::{Token, password, random_bytes};
use crate::db::{self, DbConnection};
use crate::errors::ApiError;
use crate::http::extract::ValidJson;
use crate::repo;
use crate::repo::presence::Whose;
use crate::repo::refresh_tokens::{self, RefreshTokenRow};
use crate::repo::users::{ActiveUser, UserChanges, UserScope};

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "admin@dossier.example", "password": "correct horse battery staple"}))]
pub struct LoginRequest {
    #[validate(length(min = 1, max = 254))]
    #[schema(min_length = 1, max_length = 254)]
    pub email: String,
    #[validate(length(min = 1, max = 1024))]
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "yJq0m4Zb2dT1cF8sXo7pQ9wL3eR5uA6iK0nH2gV4bM8"}))]
pub struct RefreshRequest {
    #[validate(length(min = 1, max = 256))]
    #[schema(min_length = 1, max_length = 256)]
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "yJq0m4Zb2dT1cF8sXo7pQ9wL3eR5uA6iK0nH2gV4bM8", "everywhere": false}))]
pub struct LogoutRequest {
    /// The session's refresh token, the last one issued to it.
    #[validate(length(min = 1, max = 256))]
    #[schema(min_length = 1, max_length = 256)]
    pub refresh_token: String,
    /// Ends every session of the same user, on every device, not only this one. The token
    /// must then still work: another is 401 `invalid_refresh_token` and ends nothing else (a
    /// spent one is reuse, as at `/v1/auth/refresh`: the session it came from ends).
    #[serde(default)]
    #[schema(default = false)]
    pub everywhere: bool,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "correct horse battery staple", "new_password": "a new and longer passphrase"}))]
pub struct ChangePassword {
    /// The account's password now.
    #[validate(length(min = 1, max = 1024))]
    #[schema(min_length = 1, max_length = 1024)]
    pub current_password: String,
    #[validate(length(min = 12, max = 1024))]
    #[schema(min_length = 12, max_length = 1024)]
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9…",
    "token_type": "Bearer",
    "expires_in": 900,
    "refresh_token": "yJq0m4Zb2dT1cF8sXo7pQ9wL3eR5uA6iK0nH2gV4bM8",
    "refresh_expires_in": 1209600
}))]
pub struct TokenResponse {
    /// JWT to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(pattern = "^Bearer$")]
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque, single-use: exchange it at `/v1/auth/refresh` for a new pair.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
}

fn invalid_credentials() -> ApiError {
    ApiError::Unauthorized {
        code: "invalid_credentials",
        detail: "The e-mail or the password is wrong.".into(),
    }
}

fn invalid_refresh_token() -> ApiError {
    ApiError::Unauthorized {
        code: "invalid_refresh_token",
        detail: "The refresh token is unknown, expired, revoked or already used; log in again."
            .into(),
    }
}

fn hash_token(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// Issues an access token and a refresh token in `family_id` (a new login starts a family).
fn issue_pair(
    state: &AppState,
    conn: &mut DbConnection,
    user: &ActiveUser,
    family_id: String,
) -> Result<TokenResponse, ApiError> {
    let (row, session_epoch) = (&user.row, user.epochs.sum());
    let refresh = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let now = db::now();
    let refresh_ttl = state.settings.jwt.refresh_ttl;
    refresh_tokens::insert(
        conn,
        &RefreshTokenRow {
            id: repo::new_id(),
            family_id,
            user_id: row.id.clone(),
            token_hash: hash_token(&refresh),
            expires_at: now + refresh_ttl,
            used_at: None,
            revoked_at: None,
            created_at: now,
        },
    )?;
    let access_token = state
        .tokens
        .issue(&Subject {
            user_id: &row.id,
            role: row.role(),
            agency_id: row.agency_id.as_deref(),
            admin: row.is_admin,
            session_epoch,
        })
        .map_err(ApiError::internal)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: state.tokens.access_ttl_secs(),
        refresh_token: refresh,
        refresh_expires_in: refresh_ttl.as_secs() as i64,
    })
}

/// A password check for the account `email` from the request's address, counted by the
/// throttle (429 once either has failed too often).
fn attempt_for<'a>(
    state: &'a AppState,
    req: &HttpRequest,
    email: &str,
) -> Result<crate::auth::throttle::Attempt<'a>, ApiError> {
    // Lossy: a client's stray byte must not make the whole line, the proxy's entry with it,
    // disappear (the entry with it just fails to parse).
    let forwarded_for: Vec<String> = req
        .headers()
        .get_all("x-forwarded-for")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let address = state
        .throttle
        .client_address(req.peer_addr().map(|a| a.ip()), &forwarded_for);
    state
        .throttle
        .attempt(email, &address)
        .map_err(|retry_after| ApiError::TooManyRequests { retry_after })
}

/// Log in
///
/// Exchanges an e-mail and a password for a short-lived access token and a single-use refresh
/// token. A wrong password, an unknown e-mail and a deactivated account get the same 401.
/// After repeated failures for one account or from one address, attempts are refused with 429
/// and `Retry-After` until the window passes (even with the right password). Roles: anyone (no
/// token).
#[utoipa::path(
    tag = "auth",
    operation_id = "create_token",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse, headers(("Cache-Control" = String, description = "`no-store`: tokens are kept by no cache"))),
        (status = 401, description = "Wrong e-mail or password (`invalid_credentials`)"),
        (status = 422, description = "A member breaks a rule"),
        (status = 429, description = "Too many failed logins", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
#[post("/v1/auth/token")]
pub async fn create_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ValidJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { email, password } = body.0;
    let email = email.trim().to_lowercase();
    let attempt = attempt_for(&state, &req, &email)?;

    let lookup = email.clone();
    // A deactivated account is looked up like an unknown one: same answer, same time.
    let user = db::read(&state.pool, move |conn| {
        Ok(repo::users::find_active_by_email(conn, &lookup)?)
    })
    .await?;
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let password_ok = password::off_the_pool(move || match stored_hash {
        Some(hash) => password::verify(&password, &hash),
        None => {
            password::burn_verification_time(&password);
            false
        }
    })
    .await
    .ok_or_else(|| ApiError::internal("the password checking thread failed"))?;
    let user = match user {
        Some(user) if password_ok => user,
        _ => {
            attempt.failed();
            return Err(invalid_credentials());
        }
    };

    let st = state.clone();
    let issued = db::write(&state.pool, move |conn| {
        // The password was checked outside this write: a change of password or a deactivation
        // committed meanwhile has revoked every session, and this one must not outlive it.
        repo::users::lock_for_new_session(conn, &user.id)?;
        // The row as locked: its session epoch is the one the new token must carry.
        let current = repo::users::find_active(conn, &user.id)?
            .filter(|c| c.row.password_hash == user.password_hash)
            .ok_or_else(invalid_credentials)?;
        issue_pair(&st, conn, &current, repo::new_id())
    })
    .await;
    // Settled by what committed: a password changed meanwhile made this one wrong, and an
    // outage (a 503) decided nothing, so its attempt is given back.
    match &issued {
        Ok(_) => attempt.succeeded(),
        Err(ApiError::Unauthorized { .. }) => attempt.failed(),
        Err(_) => drop(attempt),
    }
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(issued?))
}

/// Change your password
///
/// Any user changes their own password, giving the one they have now (a token alone, stolen
/// for its few minutes, cannot). Every session of theirs ends, on every device: refresh tokens
/// revoked, access tokens issued until now refused. The answer is a new pair for this one, so
/// the caller stays logged in here (their presence stays as it was). A wrong
/// `current_password` is 422 `wrong_password` and counts as a failed login of the account:
/// after repeated failures the change, like a login, is 429 with `Retry-After`. Audited
/// (`user` `update`, `password` named without values). Roles: any user.
#[utoipa::path(
    tag = "auth",
    operation_id = "change_password",
    request_body = ChangePassword,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed: a new token pair for this session", body = TokenResponse, headers(("Cache-Control" = String, description = "`no-store`: tokens are kept by no cache"))),
        (status = 409, description = "The password changed while this request ran (`concurrent_update`)"),
        (status = 422, description = "A member breaks a rule, or `current_password` is not the account's (`wrong_password`)"),
        (status = 429, description = "Too many failed attempts", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
#[put("/v1/me/password")]
pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    body: ValidJson<ChangePassword>,
) -> Result<HttpResponse, ApiError> {
    let ChangePassword {
        current_password,
        new_password,
    } = body.0;
    let reading = token.clone();
    let me = db::read(&state.pool, move |conn| reading.profile(conn)).await?;
    let attempt = attempt_for(&state, &req, &me.email)?;
    let stored_hash = me.password_hash.clone();
    let password_ok =
        password::off_the_pool(move || password::verify(&current_password, &stored_hash))
            .await
            .ok_or_else(|| ApiError::internal("the password checking thread failed"))?;
    if !password_ok {
        attempt.failed();
        return Err(ApiError::invalid_field(
            "/current_password",
            "wrong_password",
            "not the account's password",
        ));
    }
    attempt.succeeded();
    let new_hash = crate::api::users::hash_password(new_password).await?;
    let asking = Asking::new(token, &req);
    let st = state.clone();
    let issued = db::write(&state.pool, move |conn| {
        let Asked { actor, .. } = asking.resolve(conn)?;
        // The password was checked outside this write: it must still be the account's.
        let changed_meanwhile = || ApiError::Conflict {
            code: "concurrent_update",
            detail: "The password changed while this request ran; try again.".into(),
        };
        let before = repo::users::find(conn, &UserScope::All, &me.id)?
            .filter(|now| now.password_hash == me.password_hash)
            .ok_or_else(changed_meanwhile)?;
        let changes = UserChanges {
            password_hash: Some(new_hash),
            ..UserChanges::default()
        };
        if !repo::users::update(conn, &me.id, before.version, &changes)? {
            return Err(changed_meanwhile());
        }
        // Every session ends; this one goes on under a new pair, so the caller is not offline.
        refuse_every_token(conn, &me.id)?;
        // Their agency deactivated meanwhile (a user's own deactivation moves the version).
        let after =
            repo::users::find_active(conn, &me.id)?.ok_or_else(|| ApiError::Unauthorized {
                code: "invalid_token",
                detail: "The account was deactivated while this request ran.".into(),
            })?;
        let changed = crate::api::users::user_changes("update", Some(&before), &after.row);
        repo::audit::append(conn, &actor, changed)?;
        issue_pair(&st, conn, &after, repo::new_id())
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(issued))
}

/// Log out
///
/// Ends the session the refresh token belongs to: it and every token descending from the same
/// login stop working (401 at `/v1/auth/refresh`); with `everywhere`, every session of the
/// user. One session's access token is left to expire (`expires_in` seconds; the app drops
/// it); `everywhere` also refuses every access token issued until then (401 `invalid_token` at
/// their next request). When the user has no session left, their presence becomes `offline`
/// (the automatic assignment stops giving them work). For a single session, a token that is
/// unknown, expired or revoked already is answered 204 too (RFC 7009's revocation answers
/// such a token as a success): the outcome is the same and nothing tells whether it existed.
/// `everywhere` needs a token that still works; a spent one is 401 and, as at
/// `/v1/auth/refresh`, counts as reuse: its session ends. Roles: whoever holds the refresh
/// token (no access token).
#[utoipa::path(
    tag = "auth",
    operation_id = "logout",
    request_body = LogoutRequest,
    responses(
        (status = 204, description = "The session (or, with `everywhere`, every session) has ended"),
        (status = 401, description = "`everywhere` with a refresh token that no longer works (`invalid_refresh_token`)"),
        (status = 422, description = "A member breaks a rule"),
    )
)]
#[post("/v1/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    body: ValidJson<LogoutRequest>,
) -> Result<HttpResponse, ApiError> {
    let LogoutRequest {
        refresh_token: token,
        everywhere,
    } = body.0;
    let hash = hash_token(&token);
    let outcome = match token_owner(&state, &hash).await? {
        Some(owner) => end_session(&state, hash, owner, everywhere).await?,
        None => LoggedOut::Unknown,
    };
    if matches!(outcome, LoggedOut::Reused) {
        log::warn!("a spent refresh token was presented to log out; its family is revoked");
    }
    match outcome {
        LoggedOut::Unknown | LoggedOut::Reused if everywhere => Err(invalid_refresh_token()),
        _ => Ok(HttpResponse::NoContent().finish()),
    }
}

/// The user a refresh token with this hash belongs to, read outside any write: a request
/// naming none (a guess, a token swept long ago) never waits for, nor holds up, the writer.
async fn token_owner(state: &AppState, hash: &str) -> Result<Option<String>, ApiError> {
    let hash = hash.to_owned();
    db::read(&state.pool, move |conn| {
        Ok(refresh_tokens::find_by_hash(conn, &hash)?.map(|t| t.user_id))
    })
    .await
}

/// The write of a logout whose token exists, `owner`'s.
async fn end_session(
    state: &AppState,
    hash: String,
    owner: String,
    everywhere: bool,
) -> Result<LoggedOut, ApiError> {
    db::write(&state.pool, move |conn| {
        // Exclusive, unlike a login's or a refresh's share: two sessions ending at once must
        // not each see the other still live and both leave the presence as it was.
        repo::users::lock_for_update(conn, &[owner.as_str()])?;
        // Read under the lock: a refresh committed since the read spent it (PostgreSQL).
        let Some(token) = refresh_tokens::find_by_hash(conn, &hash)? else {
            return Ok(LoggedOut::Unknown);
        };
        let now = db::now();
        let outcome = match (everywhere, token.works(now), token.spent()) {
            // No session is left: nothing more to look at.
            (true, true, _) => {
                end_every_session(conn, &token.user_id)?;
                return Ok(LoggedOut::Ended);
            }
            (true, false, false) => return Ok(LoggedOut::Unknown),
            (_, _, spent) => {
                refresh_tokens::revoke_family(conn, &token.family_id)?;
                if spent {
                    LoggedOut::Reused
                } else {
                    LoggedOut::Ended
                }
            }
        };
        if !refresh_tokens::any_live(conn, &token.user_id, now)? {
            repo::presence::go_offline(conn, Whose::User(&token.user_id), now)?;
        }
        Ok(outcome)
    })
    .await
}

/// Ends every session of the user: refresh tokens revoked, access tokens issued so far refused
/// (their session epoch moves on), presence `offline`. An agency operator's queue lock must be
/// held already (`repo::presence::lock_queue`) where the write goes on to serve it.
pub fn end_every_session(conn: &mut DbConnection, user_id: &str) -> QueryResult<()> {
    refuse_every_token(conn, user_id)?;
    repo::presence::go_offline(conn, Whose::User(user_id), db::now())
}

/// Refresh tokens revoked, access tokens issued so far refused; the presence left as it is.
fn refuse_every_token(conn: &mut DbConnection, user_id: &str) -> QueryResult<()> {
    refresh_tokens::revoke_user(conn, user_id)?;
    repo::users::end_sessions(conn, user_id)
}

/// What a logout found.
enum LoggedOut {
    /// The session (or every session) ended.
    Ended,
    /// A spent token, presented again: its family is revoked, as a refresh would.
    Reused,
    /// Unknown, or (for `everywhere`) no longer working and not spent: nothing changed.
    Unknown,
}

enum Refreshed {
    Issued(TokenResponse),
    /// The token was spent or revoked already: its family is now revoked.
    Reused,
    Invalid,
}

/// Refresh tokens
///
/// Spends a refresh token for a new access token and a new refresh token. Each refresh token
/// works once: presenting a spent one again revokes every token descending from the same login
/// (the whole family), and all of them answer 401 from then on. Roles: whoever holds the
/// refresh token (no access token).
#[utoipa::path(
    tag = "auth",
    operation_id = "refresh_token",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse, headers(("Cache-Control" = String, description = "`no-store`: tokens are kept by no cache"))),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token (`invalid_refresh_token`)"),
        (status = 422, description = "A member breaks a rule"),
    )
)]
#[post("/v1/auth/refresh")]
pub async fn refresh_token(
    state: web::Data<AppState>,
    body: ValidJson<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let hash = hash_token(&body.0.refresh_token);
    let Some(owner) = token_owner(&state, &hash).await? else {
        return Err(invalid_refresh_token());
    };
    let st = state.clone();
    let outcome = db::write(&state.pool, move |conn| {
        repo::users::lock_for_new_session(conn, &owner)?;
        // Read under the lock: a password change committed since the read has revoked it.
        let Some(token) = refresh_tokens::find_by_hash(conn, &hash)? else {
            return Ok(Refreshed::Invalid);
        };
        // Revoked (a logout of every session, a reuse already caught): simply dead.
        if token.revoked_at.is_some() {
            return Ok(Refreshed::Invalid);
        }
        // A racing refresh with the same token loses here too, and counts as reuse.
        if token.spent() || !refresh_tokens::spend(conn, &token.id)? {
            refresh_tokens::revoke_family(conn, &token.family_id)?;
            return Ok(Refreshed::Reused);
        }
        if token.expires_at <= db::now() {
            return Ok(Refreshed::Invalid);
        }
        let Some(user) = repo::users::find_active(conn, &token.user_id)? else {
            return Ok(Refreshed::Invalid);
        };
        Ok(Refreshed::Issued(issue_pair(
            &st,
            conn,
            &user,
            token.family_id,
        )?))
    })
    .await?;
    match outcome {
        Refreshed::Issued(tokens) => Ok(HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(tokens)),
        Refreshed::Reused => {
            log::warn!("a spent refresh token was presented again; its family is revoked");
            Err(invalid_refresh_token())
        }
        Refreshed::Invalid => Err(invalid_refresh_token()),
    }
}
