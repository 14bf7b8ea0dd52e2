use proptest::prelude::*;

use super::*;

fn masker(secrets: &[&str]) -> Masker {
    Masker::new(secrets.iter().map(|s| s.as_bytes().to_vec())).unwrap()
}

/// The stream masked in one feed.
fn mask(secrets: &[&str], input: &str) -> String {
    let mut m = masker(secrets);
    let mut out = Vec::new();
    m.feed(input.as_bytes(), &mut out);
    m.finish(&mut out);
    String::from_utf8(out).unwrap()
}

/// The stream masked one byte at a time, checking the bound on what is held after each.
fn mask_bytewise(m: &mut Masker, input: &[u8], longest: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in input {
        m.feed(&[b], &mut out);
        assert!(m.held() < longest.max(1), "held {} of {longest}", m.held());
    }
    m.finish(&mut out);
    assert_eq!(m.held(), 0);
    out
}

/// Jenkins' masking of secrets without line feeds: at each position the longest secret
/// starting there, as a regular expression of the quoted secrets, longest first, matches.
fn reference(secrets: &[Vec<u8>], input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < input.len() {
        let longest = secrets
            .iter()
            .filter(|s| !s.is_empty() && input[i..].starts_with(s))
            .map(Vec::len)
            .max();
        match longest {
            Some(len) => {
                out.extend_from_slice(MASK);
                i += len;
            }
            None => {
                out.push(input[i]);
                i += 1;
            }
        }
    }
    out
}

#[test]
fn secrets_are_masked() {
    assert_eq!(
        mask(&["hunter2"], "+ curl -u admin:hunter2 x"),
        "+ curl -u admin:**** x"
    );
    assert_eq!(mask(&["s3cr3t"], "s3cr3ts3cr3t"), "********");
    assert_eq!(mask(&[], "nothing to hide"), "nothing to hide");
    assert_eq!(mask(&["", "x"], "axb"), "a****b");
}

#[test]
fn the_longest_secret_at_a_position_wins() {
    // The plugin's own example of a secret inside another.
    assert_eq!(
        mask(
            &["android", "androiddebugkey"],
            "key androiddebugkey, pass android."
        ),
        "key ****, pass ****."
    );
    // Leftmost first: a secret that starts earlier wins over a longer one inside it.
    assert_eq!(mask(&["abcd", "bc"], "abcx"), "a****x");
    assert_eq!(mask(&["abcd", "bc"], "abcd"), "****");
    assert_eq!(mask(&["ab", "bcdef"], "abcdef"), "****cdef");
    assert_eq!(mask(&["aaa"], "aaaa"), "****a");
    assert_eq!(mask(&["aa", "aaa"], "aaaaa"), "********");
}

#[test]
fn a_secret_split_across_chunks_is_masked() {
    let mut m = masker(&["hunter2"]);
    let mut out = Vec::new();
    m.feed(b"pass: hun", &mut out);
    assert_eq!(out, b"pass: ");
    assert_eq!(m.held(), 3);
    m.feed(b"te", &mut out);
    m.feed(b"r2!\n", &mut out);
    assert_eq!(out, b"pass: ****!\n");
    assert_eq!(m.held(), 0);
    // A start that does not go on is written out once it cannot be a secret.
    m.feed(b"hunt", &mut out);
    m.feed(b"ing", &mut out);
    m.finish(&mut out);
    assert_eq!(out, b"pass: ****!\nhunting");
}

#[test]
fn finish_writes_out_a_start_and_the_masker_takes_a_new_stream() {
    let mut m = masker(&["hunter2"]);
    let mut out = Vec::new();
    m.feed(b"hunter", &mut out);
    assert!(out.is_empty());
    m.finish(&mut out);
    assert_eq!(out, b"hunter");
    out.clear();
    m.feed(b"2 hunter2", &mut out);
    m.finish(&mut out);
    assert_eq!(out, b"2 ****");
}

#[test]
fn one_byte_at_a_time() {
    let secrets = ["android", "androiddebugkey", "key"];
    let input = b"androiddebugke android key androiddebugkey";
    let mut m = masker(&secrets);
    let out = mask_bytewise(&mut m, input, 15);
    assert_eq!(
        out,
        mask(&secrets, std::str::from_utf8(input).unwrap()).as_bytes()
    );
    assert_eq!(out, b"****debugke **** **** ****");
}

const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBLtE4NKkNO3iTd\n-----END OPENSSH PRIVATE KEY-----\n";

#[test]
fn a_private_key_is_masked_whole_and_by_lines() {
    assert_eq!(
        mask(&[KEY], &format!("$ cat key\n{KEY}$ ")),
        "$ cat key\n****$ "
    );
    // Without its last line feed, as `$(cat key)` gives it.
    assert_eq!(mask(&[KEY], &format!("[{}]", KEY.trim_end())), "[****]");
    // As a terminal shows it, CR LF.
    assert_eq!(mask(&[KEY], &KEY.replace('\n', "\r\n")), "****");
    // Part of it: each line of 16 bytes or more is masked on its own.
    let head: String = KEY.lines().take(2).map(|l| format!("{l}\n")).collect();
    assert_eq!(mask(&[KEY], &head), "****\n****\n");
    let tail = "QyNTUxOQAAACBLtE4NKkNO3iTd\n";
    assert_eq!(mask(&[KEY], tail), "****\n");
    assert_eq!(
        mask(&["line one is long\n}\n"], "}\nline one is long\n"),
        "}\n****\n"
    );
}

#[test]
fn a_secret_with_a_final_line_feed_is_masked_without_it() {
    // A password pasted with its line feed, printed by `set -x` without it.
    assert_eq!(
        mask(&["hunter2\n"], "+ login -p hunter2 x\n"),
        "+ login -p **** x\n"
    );
    assert_eq!(mask(&["\n"], "a\nb"), "a****b");
}

#[test]
fn limits() {
    let many = (0..=MAX_SECRETS).map(|i| format!("secret-{i}").into_bytes());
    assert_eq!(
        Masker::new(many).unwrap_err(),
        MaskError::TooManySecrets(MAX_SECRETS + 1)
    );
    // Duplicates count once.
    assert!(Masker::new(std::iter::repeat_n(b"same".to_vec(), MAX_SECRETS + 1)).is_ok());
    assert_eq!(
        Masker::new([vec![b'x'; MAX_SECRET_LEN + 1]]).unwrap_err(),
        MaskError::SecretTooLong(MAX_SECRET_LEN + 1)
    );
    let big = (0..3).map(|i| vec![b'a' + i; MAX_SECRET_LEN]);
    assert!(matches!(Masker::new(big), Err(MaskError::TooManyBytes(_))));
    assert!(Masker::new([vec![b'x'; MAX_SECRET_LEN], vec![b'y'; MAX_SECRET_LEN]]).is_ok());
}

#[test]
fn debug_shows_no_held_bytes() {
    let mut m = masker(&["hunter2"]);
    m.feed(b"hunte", &mut Vec::new());
    let debug = format!("{m:?}");
    assert!(
        !debug.contains("hunte") && !debug.contains("104"),
        "{debug}"
    );
}

#[test]
fn long_repetitions_stay_linear() {
    // A secret of one byte repeated, in a console of that byte: each byte is constant work.
    let secret = vec![b'a'; 1000];
    let input = vec![b'a'; 200_500];
    let mut m = Masker::new([secret.clone()]).unwrap();
    let mut out = Vec::new();
    for chunk in input.chunks(4096) {
        m.feed(chunk, &mut out);
        assert!(m.held() < 1000);
    }
    m.finish(&mut out);
    assert_eq!(out, reference(&[secret], &input));
}

/// Secrets and input over a small alphabet, so that secrets overlap and occur often; no
/// `*`, so a secret cannot be made of a mask and its neighbours.
fn secrets() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(
        proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c')], 0..6),
        0..5,
    )
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![Just(b'a'), Just(b'b'), Just(b'c'), Just(b'x')],
        0..200,
    )
}

/// The input fed in chunks cut at `cuts` (positions taken modulo its length).
fn fed_in_chunks(secrets: &[Vec<u8>], input: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut m = Masker::new(secrets.to_vec()).unwrap();
    let mut out = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([input.len()]) {
        m.feed(&input[from..cut], &mut out);
        from = cut;
    }
    m.finish(&mut out);
    out
}

proptest! {
    #[test]
    fn masking_is_jenkins_masking(secrets in secrets(), input in input()) {
        let longest = secrets.iter().map(Vec::len).max().unwrap_or(0);
        let mut m = Masker::new(secrets.clone()).unwrap();
        prop_assert_eq!(mask_bytewise(&mut m, &input, longest), reference(&secrets, &input));
    }

    #[test]
    fn any_split_gives_the_same_output(
        secrets in secrets(),
        input in input(),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        prop_assert_eq!(fed_in_chunks(&secrets, &input, &cuts), fed_in_chunks(&secrets, &input, &[]));
    }

    #[test]
    fn no_secret_survives(secrets in secrets(), input in input(), cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
        let out = fed_in_chunks(&secrets, &input, &cuts);
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            prop_assert!(!out.windows(secret.len()).any(|w| w == secret.as_slice()));
        }
    }

    #[test]
    fn input_without_secrets_is_unchanged(secrets in secrets(), input in input()) {
        prop_assume!(secrets.iter().filter(|s| !s.is_empty()).all(|s| !input.windows(s.len()).any(|w| w == s.as_slice())));
        prop_assert_eq!(fed_in_chunks(&secrets, &input, &[]), input);
    }

    /// Multi-line secrets, split anywhere: the same output, and no whole secret in it.
    #[test]
    fn multi_line_secrets_split_anywhere(
        secrets in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'\n'), Just(b'\r')], 1..30), 1..3),
        input in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'\n'), Just(b'\r'), Just(b'x')], 0..200),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let out = fed_in_chunks(&secrets, &input, &cuts);
        prop_assert_eq!(&out, &fed_in_chunks(&secrets, &input, &[]));
        for secret in &secrets {
            prop_assert!(!out.windows(secret.len()).any(|w| w == secret.as_slice()));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        secrets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..6),
        input in proptest::collection::vec(any::<u8>(), 0..500),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let _ = fed_in_chunks(&secrets, &input, &cuts);
    }
}
