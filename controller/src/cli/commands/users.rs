//! Users, their API tokens and the permissions granted: `create-user`, `delete-user`,
//! `list-users`, `set-password`, `create-api-token`, `list-api-tokens`,
//! `revoke-api-token`, `grant-permissions`, `revoke-permissions`, `list-permissions`.

use futures_util::FutureExt;
use steward_protocol::duration::utc;
use steward_protocol::shown::Shown;

use super::args::Args;
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::permissions::ALL;
use crate::auth::{Permission, accounts};
use crate::store::users::{self, ANONYMOUS, AUTHENTICATED};

pub const COMMANDS: &[&Command] = &[
    &CREATE_USER,
    &DELETE_USER,
    &LIST_USERS,
    &SET_PASSWORD,
    &CREATE_TOKEN,
    &LIST_TOKENS,
    &REVOKE_TOKEN,
    &GRANT,
    &REVOKE,
    &LIST_PERMISSIONS,
];

const CREATE_USER: Command = Command {
    name: "create-user",
    summary: "Creates a user (no password and no token yet: set-password, create-api-token).",
    usage: "NAME [-full-name NAME] [-email ADDRESS]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| create_user(ctx).boxed(),
};

const DELETE_USER: Command = Command {
    name: "delete-user",
    summary: "Deletes a user with their tokens and grants.",
    usage: "NAME",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| delete_user(ctx).boxed(),
};

const LIST_USERS: Command = Command {
    name: "list-users",
    summary: "Lists the users: name, full name, e-mail, whether they have a password, their \
              tokens.\n-json: as JSON",
    usage: "[-json]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| list_users(ctx).boxed(),
};

const SET_PASSWORD: Command = Command {
    name: "set-password",
    summary: "Sets a user's password, read from stdin (one line). Your own, or anyone's \
              with Overall/Administer.",
    usage: "NAME",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| set_password(ctx).boxed(),
};

const CREATE_TOKEN: Command = Command {
    name: "create-api-token",
    summary: "Creates an API token named NAME and prints its value, once. Yours, or \
              another user's (-user) with Overall/Administer.",
    usage: "NAME [-user USER]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| create_token(ctx).boxed(),
};

const LIST_TOKENS: Command = Command {
    name: "list-api-tokens",
    summary: "Lists API tokens: uuid, name, created, last used (never their values).\n\
              -user USER: another user's (Overall/Administer); -json: as JSON",
    usage: "[-user USER] [-json]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| list_tokens(ctx).boxed(),
};

const REVOKE_TOKEN: Command = Command {
    name: "revoke-api-token",
    summary: "Revokes an API token by its uuid; it stops working at once.",
    usage: "UUID [-user USER]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| revoke_token(ctx).boxed(),
};

const GRANT: Command = Command {
    name: "grant-permissions",
    summary: "Grants permissions (Job/Build, hudson.model.Item.Build…) to a user or to \
              `authenticated` or `anonymous`.",
    usage: "PRINCIPAL PERMISSION...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| grant(ctx).boxed(),
};

const REVOKE: Command = Command {
    name: "revoke-permissions",
    summary: "Revokes permissions granted to a user or to `authenticated` or `anonymous`.",
    usage: "PRINCIPAL PERMISSION...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| revoke(ctx).boxed(),
};

const LIST_PERMISSIONS: Command = Command {
    name: "list-permissions",
    summary: "Lists the permissions granted: principal, permission. -json: as JSON, with \
              every permission there is.",
    usage: "[-json]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| list_permissions(ctx).boxed(),
};

/// Longest user name.
const MAX_USER_NAME: usize = 64;
/// Longest password.
const MAX_PASSWORD: usize = 1024;

fn store_error(command: &str) -> impl Fn(crate::store::StoreError) -> CommandError + '_ {
    move |e| CommandError::unexpected(command, e)
}

/// A user name: letters, digits, `.`, `_`, `-` and `@`, not a pseudo-user's.
fn check_user_name(name: &str) -> Result<(), CommandError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
        && !name.starts_with('-');
    if !valid {
        return Err(CommandError::IllegalArgument(format!(
            "‘{}’ is not a valid user name: letters, digits, '.', '_', '-' and '@', at most \
             {MAX_USER_NAME} characters",
            Shown(name)
        )));
    }
    if [ANONYMOUS, AUTHENTICATED, "SYSTEM"]
        .iter()
        .any(|p| p.eq_ignore_ascii_case(name))
    {
        return Err(CommandError::IllegalArgument(format!(
            "‘{name}’ is a reserved name"
        )));
    }
    Ok(())
}

async fn create_user(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::OverallAdminister)?;
    let args = Args::parse(&ctx.args, &[], &["-full-name", "-email"])?;
    let name = args.one("NAME")?.to_owned();
    check_user_name(&name)?;
    let full_name = args.value("-full-name").unwrap_or(&name).to_owned();
    let email = args.value("-email");
    let created = accounts::create_user(&ctx.state, &name, &full_name, email, &ctx.actor())
        .await
        .map_err(store_error("create-user"))?;
    if !created {
        return Err(CommandError::IllegalState(format!(
            "User ‘{name}’ already exists"
        )));
    }
    Ok(0)
}

async fn delete_user(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::OverallAdminister)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    let name = args.one("NAME")?.to_owned();
    if name == ctx.identity.name() {
        return Err(CommandError::IllegalState(
            "You cannot delete yourself".into(),
        ));
    }
    let deleted = accounts::delete_user(&ctx.state, &name, &ctx.actor())
        .await
        .map_err(store_error("delete-user"))?;
    if !deleted {
        return Err(no_such_user(&name));
    }
    Ok(0)
}

fn no_such_user(name: &str) -> CommandError {
    CommandError::IllegalArgument(format!("No such user ‘{}’", Shown(name)))
}

async fn list_users(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::OverallAdminister)?;
    let args = Args::parse(&ctx.args, &["-json"], &[])?;
    let all = ctx
        .state
        .store
        .call(|c| users::list(c))
        .await
        .map_err(store_error("list-users"))?;
    let text = if args.flag("-json") {
        format!("{}\n", serde_json::json!({ "users": all }))
    } else {
        all.iter()
            .map(|u| {
                format!(
                    "{}\t{}\t{}\t{}\t{} tokens\n",
                    Shown(&u.name),
                    Shown(&u.full_name),
                    Shown(u.email.as_deref().unwrap_or("-")),
                    if u.has_password {
                        "password"
                    } else {
                        "no password"
                    },
                    u.tokens
                )
            })
            .collect()
    };
    ctx.out.stdout(text).await;
    Ok(0)
}

/// The user a command acts on: `-user U` (another user needs Overall/Administer) or the
/// caller.
fn target_user(ctx: &Context, given: Option<&str>) -> Result<String, CommandError> {
    let me = ctx.identity.name();
    match given {
        Some(user) if user != me => {
            ctx.require(Permission::OverallAdminister)?;
            Ok(user.to_owned())
        }
        _ => {
            if matches!(ctx.identity, crate::auth::Identity::Anonymous(_)) {
                return Err(CommandError::IllegalState(
                    "anonymous has no tokens or password: authenticate first".into(),
                ));
            }
            Ok(me.to_owned())
        }
    }
}

async fn set_password(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let name = target_user(ctx, Some(args.one("NAME")?))?;
    let bytes = ctx.stdin.read_to_end(MAX_PASSWORD + 2).await.map_err(|_| {
        CommandError::IllegalArgument(format!("A password is at most {MAX_PASSWORD} bytes"))
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CommandError::IllegalArgument("The password is not UTF-8".into()))?;
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password).to_owned();
    if password.is_empty() {
        return Err(CommandError::IllegalArgument(
            "No password on stdin (one line is read)".into(),
        ));
    }
    if password.len() > MAX_PASSWORD {
        return Err(CommandError::IllegalArgument(format!(
            "A password is at most {MAX_PASSWORD} bytes"
        )));
    }
    let set = accounts::set_password(&ctx.state, &name, password, &ctx.actor())
        .await
        .map_err(store_error("set-password"))?;
    if !set {
        return Err(no_such_user(&name));
    }
    Ok(0)
}

async fn create_token(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &["-user"])?;
    let token_name = args.one("NAME")?.trim().to_owned();
    if token_name.is_empty() || token_name.len() > 128 || token_name.chars().any(char::is_control) {
        return Err(CommandError::IllegalArgument(
            "A token name is 1 to 128 characters, without control characters".into(),
        ));
    }
    let user = target_user(ctx, args.value("-user"))?;
    let created = accounts::create_token(&ctx.state, &user, &token_name, &ctx.actor())
        .await
        .map_err(store_error("create-api-token"))?;
    let Some((uuid, value)) = created else {
        return Err(no_such_user(&user));
    };
    ctx.out.stdout(format!("{value}\n")).await;
    ctx.out
        .stderr(format!(
            "Token {uuid} ({token_name}) for {user}: shown once, keep it\n"
        ))
        .await;
    Ok(0)
}

async fn list_tokens(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &["-json"], &["-user"])?;
    let user = target_user(ctx, args.value("-user"))?;
    let u = user.clone();
    let tokens = ctx
        .state
        .store
        .call(move |c| users::list_tokens(c, &u))
        .await
        .map_err(store_error("list-api-tokens"))?;
    let text = if args.flag("-json") {
        format!(
            "{}\n",
            serde_json::json!({ "user": user, "tokens": tokens })
        )
    } else {
        tokens
            .iter()
            .map(|t| {
                format!(
                    "{}\t{}\t{}\t{}\n",
                    t.uuid,
                    Shown(&t.name),
                    utc(t.created_at.saturating_mul(1000)),
                    t.last_used_at
                        .map_or_else(|| "never used".to_owned(), |s| utc(s.saturating_mul(1000)))
                )
            })
            .collect()
    };
    ctx.out.stdout(text).await;
    Ok(0)
}

async fn revoke_token(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &["-user"])?;
    let uuid = args.one("UUID")?.to_owned();
    let user = target_user(ctx, args.value("-user"))?;
    let revoked = accounts::revoke_token(&ctx.state, &user, &uuid, &ctx.actor())
        .await
        .map_err(store_error("revoke-api-token"))?;
    if !revoked {
        return Err(CommandError::IllegalArgument(format!(
            "{user} has no API token {}",
            Shown(&uuid)
        )));
    }
    Ok(0)
}

/// The principal and permissions of `grant-permissions`/`revoke-permissions`, checked.
async fn principal_and_permissions(
    ctx: &Context,
) -> Result<(String, Vec<Permission>), CommandError> {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let [principal, names @ ..] = args.positional.as_slice() else {
        return Err(CommandError::BadArgs(
            "Argument \"PRINCIPAL\" is required".into(),
        ));
    };
    if names.is_empty() {
        return Err(CommandError::BadArgs(
            "Argument \"PERMISSION\" is required".into(),
        ));
    }
    let mut permissions = Vec::new();
    for name in names {
        let permission = Permission::parse(name).ok_or_else(|| {
            CommandError::IllegalArgument(format!(
                "No such permission ‘{}’: list-permissions -json names them all",
                Shown(name)
            ))
        })?;
        permissions.push(permission);
    }
    if principal != ANONYMOUS && principal != AUTHENTICATED {
        let p = principal.clone();
        let known = ctx
            .state
            .store
            .call(move |c| users::get(c, &p))
            .await
            .map_err(store_error("grant-permissions"))?;
        if known.is_none() {
            return Err(no_such_user(principal));
        }
    }
    Ok((principal.clone(), permissions))
}

async fn grant(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::OverallAdminister)?;
    let (principal, permissions) = principal_and_permissions(ctx).await?;
    accounts::grant(&ctx.state, &principal, &permissions, &ctx.actor())
        .await
        .map_err(store_error("grant-permissions"))?;
    Ok(0)
}

async fn revoke(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::OverallAdminister)?;
    let (principal, permissions) = principal_and_permissions(ctx).await?;
    if permissions.contains(&Permission::OverallAdminister) && principal == ctx.identity.name() {
        return Err(CommandError::IllegalState(
            "You cannot revoke your own Overall/Administer: another administrator can".into(),
        ));
    }
    accounts::revoke(&ctx.state, &principal, &permissions, &ctx.actor())
        .await
        .map_err(store_error("revoke-permissions"))?;
    Ok(0)
}

async fn list_permissions(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::OverallAdminister)?;
    let args = Args::parse(&ctx.args, &["-json"], &[])?;
    let grants = ctx
        .state
        .store
        .call(|c| users::grants(c))
        .await
        .map_err(store_error("list-permissions"))?;
    let text = if args.flag("-json") {
        let granted: Vec<_> = grants
            .iter()
            .map(|(principal, p)| {
                serde_json::json!({"principal": principal, "permission": p.display_name(), "id": p.id()})
            })
            .collect();
        let known: Vec<_> = ALL
            .iter()
            .map(|p| serde_json::json!({"name": p.display_name(), "id": p.id()}))
            .collect();
        format!(
            "{}\n",
            serde_json::json!({"grants": granted, "permissions": known})
        )
    } else {
        grants
            .iter()
            .map(|(principal, p)| format!("{principal}\t{}\n", p.display_name()))
            .collect()
    };
    ctx.out.stdout(text).await;
    Ok(0)
}
