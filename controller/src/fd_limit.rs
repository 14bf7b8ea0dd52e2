//! The process's open-file limit (`RLIMIT_NOFILE`). Every connection costs a descriptor, so
//! the soft limit bounds what the controller can hold. Service managers start processes
//! with a low soft limit (systemd: 1024) under a much higher hard one (systemd: 524288);
//! [`raise_to_hard`] lifts the soft limit to the hard one at start-up, as any process may,
//! and the connection caps ([`crate::http::admission`]) are sized from the result.

/// An open-file limit: soft (what applies) and hard (how far the soft one may be raised).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    pub soft: u64,
    pub hard: u64,
}

/// The current limit.
pub fn current() -> std::io::Result<OpenFileLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(OpenFileLimit {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

fn set(limit: OpenFileLimit) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: limit.soft,
        rlim_max: limit.hard,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the soft open-file limit to the hard one and logs both. When that fails the
/// controller goes on with the limit it has (with a warning); `None` only when the limit
/// cannot even be read.
pub fn raise_to_hard() -> Option<OpenFileLimit> {
    let before = match current() {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the open-file limit (RLIMIT_NOFILE)");
            return None;
        }
    };
    if before.soft >= before.hard {
        tracing::info!(
            soft = before.soft,
            hard = before.hard,
            "open-file limit (RLIMIT_NOFILE)"
        );
        return Some(before);
    }
    let raised = OpenFileLimit {
        soft: before.hard,
        hard: before.hard,
    };
    match set(raised) {
        Ok(()) => {
            tracing::info!(
                soft = raised.soft,
                hard = raised.hard,
                previous_soft = before.soft,
                "open-file limit (RLIMIT_NOFILE): raised the soft limit to the hard limit"
            );
            Some(raised)
        }
        Err(e) => {
            tracing::warn!(
                soft = before.soft,
                hard = before.hard,
                error = %e,
                "open-file limit (RLIMIT_NOFILE): could not raise the soft limit to the hard limit; going on with the soft limit"
            );
            Some(before)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let before = current().unwrap();
        let after = raise_to_hard().unwrap();
        assert_eq!(after.hard, before.hard);
        assert_eq!(after.soft, before.hard);
        assert_eq!(current().unwrap(), after);
    }
}
