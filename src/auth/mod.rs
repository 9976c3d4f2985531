//! Who is calling: tokens, passwords, login throttling, the write limit and the
//! authenticated-user extractor.

pub mod jwt;
pub mod password;
pub mod throttle;
pub mod write_limit;

use std::future::{Future, Ready, ready};
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};

use crate::app::AppState;
use crate::db::DbConnection;
use crate::domain::{Locale, Role};
use crate::errors::ApiError;
use crate::repo;

/// Fills a buffer from the operating system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random generator failed");
    buf
}

/// The authenticated caller. Role, agency and admin come from the database, not from the
/// token, so a deactivated user or a changed role takes effect at the next request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: String,
    pub role: Role,
    pub agency_id: Option<String>,
    pub admin: bool,
    pub locale: Locale,
    /// The session epoch the caller's token was issued under (a write that reads the caller
    /// again checks it is still theirs).
    pub session_epoch: i64,
}

impl AuthUser {
    pub fn is_platform(&self) -> bool {
        self.role == Role::Platform
    }

    pub fn is_platform_admin(&self) -> bool {
        self.admin && self.is_platform()
    }

    pub fn is_agency_admin(&self) -> bool {
        self.role == Role::Agency && self.admin
    }

    /// 403 unless `allowed` holds: the caller's role may never do this.
    pub fn require(&self, allowed: bool, what: &str) -> Result<(), ApiError> {
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("Your role may not {what}.")))
        }
    }
}

fn invalid_token() -> ApiError {
    ApiError::Unauthorized {
        code: "invalid_token",
        detail: "The access token is invalid or expired, its session has ended, or it belongs \
                 to a deactivated user."
            .into(),
    }
}

/// A valid access token whose user is not looked up yet. A handler that uses the database
/// anyway looks the user up inside its own read or write transaction ([`Token::user`];
/// `api::Asking` when it needs the request's language and id too): one hand-off to a
/// database thread per request instead of two (the busiest routes take this).
#[derive(Debug, Clone)]
pub struct Token(jwt::Verified);

impl Token {
    /// The caller as the database has them now, or 401 if deactivated since the token was issued.
    pub fn user(&self, conn: &mut DbConnection) -> Result<AuthUser, ApiError> {
        let user = repo::users::find_caller(conn, &self.0.sub)?.ok_or_else(invalid_token)?;
        self.still_in_session(user.epochs.sum())?;
        Ok(AuthUser {
            session_epoch: user.epochs.sum(),
            role: user.role(),
            locale: user.locale(),
            agency_id: user.agency_id,
            admin: user.is_admin,
            id: user.id,
        })
    }

    /// The user id the token was issued to (not yet checked against the database).
    pub fn user_id(&self) -> &str {
        &self.0.sub
    }

    /// Whether the token has expired since the request came in (a long-lived response checks).
    pub fn expired(&self) -> bool {
        self.0.expired()
    }

    /// The caller's whole row (their profile), or 401 as for [`Token::user`].
    pub fn profile(&self, conn: &mut DbConnection) -> Result<repo::users::UserRow, ApiError> {
        let user = repo::users::find_active(conn, &self.0.sub)?.ok_or_else(invalid_token)?;
        self.still_in_session(user.epochs.sum())?;
        Ok(user.row)
    }

    /// 401 when the user's sessions ended after the token was issued (`epoch`, theirs now).
    fn still_in_session(&self, epoch: i64) -> Result<(), ApiError> {
        if self.0.session_epoch == epoch {
            Ok(())
        } else {
            Err(invalid_token())
        }
    }
}

impl FromRequest for Token {
    type Error = ApiError;
    type Future = Ready<Result<Token, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(verified_token(req))
    }
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("application state is not registered"))
}

fn verified_token(req: &HttpRequest) -> Result<Token, ApiError> {
    let state = app_state(req)?;
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        // What `HeaderValue::to_str` accepts (the parser has already refused control bytes),
        // checked a word at a time instead of a byte at a time (3% of a card's instructions).
        .filter(|v| v.as_bytes().is_ascii())
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .ok_or_else(|| ApiError::Unauthorized {
            code: "missing_token",
            detail: "Send an access token as `Authorization: Bearer <token>`.".into(),
        })?;
    let token = match header.trim().split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => return Err(invalid_token()),
    };
    let token = state.tokens.verify(token).ok_or_else(invalid_token)?;
    // Counted here, once the caller is known and before any body is read or row touched.
    if !req.method().is_safe() {
        state
            .writes
            .check(&token.sub)
            .map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    }
    Ok(Token(token))
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<AuthUser, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let caller = verified_token(req).and_then(|token| Ok((token, app_state(req)?)));
        Box::pin(async move {
            let (token, state) = caller?;
            crate::db::read(&state.pool, move |conn| token.user(conn)).await
        })
    }
}
