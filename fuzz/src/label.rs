//! `label_expr`: a job's label expression (`assignedNode`), as job XML or the REST API hand it
//! over. Bytes that are not UTF-8 are replaced, as they would be before reaching the parser.

use steward_protocol::label::{LabelError, MAX_LABEL_EXPR_LEN, parse};

/// Longest error message: the expression, and at most two tokens of it, quoted.
const MAX_MESSAGE_LEN: usize = 4 * MAX_LABEL_EXPR_LEN;

pub fn label_expr(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match parse(&text) {
        Ok(None) => assert!(text.trim().is_empty(), "{text:?} is not blank"),
        Ok(Some(e)) => {
            let atoms = e.atoms();
            assert!(atoms.iter().all(|a| !a.is_empty()), "empty label in {e:?}");
            // Only the labels an expression mentions decide whether a node matches it.
            let some = |l: &str| atoms.iter().step_by(2).any(|a| *a == l);
            let and_unmentioned = |l: &str| some(l) || !atoms.contains(&l);
            assert_eq!(e.matches(some), e.matches(and_unmentioned), "{e}");
            let canonical = e.to_string();
            if canonical.len() <= MAX_LABEL_EXPR_LEN {
                assert_eq!(parse(&canonical), Ok(Some(e)), "{text:?} -> {canonical:?}");
            } else {
                assert_eq!(parse(&canonical), Err(LabelError::TooLong(canonical.len())));
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.len() <= MAX_MESSAGE_LEN,
                "{} bytes: {message}",
                message.len()
            );
        }
    }
}
