//! Terminal replies in a client's input. A program that asks its terminal something
//! (`CSI 6n`, where is the cursor; `OSC 10;?`/`OSC 11;?`, which colours; `CSI c`, what are
//! you) gets one answer from each attached client's terminal, since each sees the
//! question. One answer is right; several are garbage typed into the program. So only one
//! client, the oldest read-write one, answers: the others' replies are taken out of their
//! input here. A reply comes in one write from a terminal, so a whole sequence is looked
//! for within one message.

/// `input` without the terminal replies in it.
pub fn without_replies(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == 0x1b
            && let Some(len) = reply_len(&input[i..])
        {
            i += len;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// The length of the reply at the start of `s` (which starts with ESC), if it is one.
fn reply_len(s: &[u8]) -> Option<usize> {
    match s.get(1)? {
        b'[' => {
            // CSI [?>] digits and semicolons, ending in R (cursor position) or c (device
            // attributes).
            let mut j = 2;
            if matches!(s.get(j), Some(b'?' | b'>')) {
                j += 1;
            }
            let params = j;
            while matches!(s.get(j), Some(b'0'..=b'9' | b';')) {
                j += 1;
            }
            match s.get(j) {
                Some(b'R') if j > params => Some(j + 1),
                Some(b'c') if params > 2 => Some(j + 1),
                _ => None,
            }
        }
        b']' => {
            // OSC 10 or 11 (or 4;N, a palette colour) ; rgb:… ending in BEL or ST.
            let body = &s[2..];
            let colour =
                body.starts_with(b"10;") || body.starts_with(b"11;") || body.starts_with(b"4;");
            if !colour {
                return None;
            }
            for (k, window) in body.windows(2).enumerate() {
                if window[0] == 0x07 {
                    return Some(2 + k + 1);
                }
                if window == b"\x1b\\" {
                    return Some(2 + k + 2);
                }
            }
            // A BEL as the very last byte.
            (body.last() == Some(&0x07)).then_some(s.len())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_taken_out_and_keystrokes_kept() {
        assert_eq!(without_replies(b"ls\x1b[12;40R\r"), b"ls\r");
        assert_eq!(
            without_replies(b"\x1b]11;rgb:0000/0000/0000\x07x\x1b]10;rgb:ffff/ffff/ffff\x1b\\"),
            b"x"
        );
        assert_eq!(without_replies(b"\x1b[?1;2c\x1b[>0;276;0c"), b"");
        // Keys that look alike stay: arrows, F3 (CSI 1;2R is shifted F3 in some terminals,
        // a reply in form; it goes, which is the price of the rule), a lone ESC.
        assert_eq!(without_replies(b"\x1b[A\x1b[B\x1b"), b"\x1b[A\x1b[B\x1b");
        assert_eq!(without_replies(b"\x1b]2;title\x07"), b"\x1b]2;title\x07");
        assert_eq!(without_replies(b"\x1b[c"), b"\x1b[c");
    }
}
