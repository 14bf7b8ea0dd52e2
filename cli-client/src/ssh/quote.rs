//! Quoting for the two languages an SSH command line passes through: the POSIX shell that
//! runs a ProxyCommand (and the remote command), and ssh's own `%` tokens.
//!
//! ssh runs a ProxyCommand as `$SHELL -c "exec LINE"` after expanding `%h`, `%p`, `%r`…
//! in it, both when it comes from `-o ProxyCommand=` and from `ssh_config`, where the rest
//! of the line is taken as it is (a `#` in it is not a comment). So each word is quoted for
//! the shell, then every `%` doubled.

use std::borrow::Cow;

/// Whether `c` means nothing special to a POSIX shell anywhere in a word.
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '_' | '-' | '.' | '/' | ',' | ':' | '=' | '+' | '@' | '%')
}

/// `word` as one POSIX shell word: as it is when nothing in it is special, otherwise in
/// single quotes (a `'` inside written `'\''`).
pub fn sh(word: &str) -> Cow<'_, str> {
    if !word.is_empty() && word.chars().all(is_plain) {
        return Cow::Borrowed(word);
    }
    Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
}

/// `words` as one shell command line.
pub fn sh_join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| sh(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `value` with every `%` doubled, so ssh's token expansion gives it back unchanged
/// (a URL's `%20`, a path with a `%`).
pub fn ssh_tokens(value: &str) -> Cow<'_, str> {
    if value.contains('%') {
        Cow::Owned(value.replace('%', "%%"))
    } else {
        Cow::Borrowed(value)
    }
}

/// A ProxyCommand value for `-o ProxyCommand=` or an `ssh_config` line: `argv` quoted for
/// the shell, `%` escaped for ssh.
pub fn proxy_command<S: AsRef<str>>(argv: &[S]) -> String {
    ssh_tokens(&sh_join(argv)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words `sh` makes of `line` (printed NUL-terminated, so a word may hold a line
    /// feed).
    fn words_by_sh(line: &str) -> Vec<String> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {line}"))
            .output()
            .expect("sh");
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn plain_words_stay_bare_others_are_single_quoted() {
        assert_eq!(sh("linux-1"), "linux-1");
        assert_eq!(sh("/usr/local/bin/cli"), "/usr/local/bin/cli");
        assert_eq!(
            sh("https://ci.example.com:8443/jenkins/"),
            "https://ci.example.com:8443/jenkins/"
        );
        assert_eq!(sh("job#3"), "'job#3'");
        assert_eq!(sh("a b"), "'a b'");
        assert_eq!(sh(""), "''");
        assert_eq!(sh("it's"), r"'it'\''s'");
        assert_eq!(sh("~x"), "'~x'");
        assert_eq!(sh("$HOME"), "'$HOME'");
    }

    #[test]
    fn the_shell_reads_back_every_word_unchanged() {
        let words = [
            "job#3",
            "a b",
            "it's",
            "$(touch /tmp/nope)",
            "`x`",
            "tab\there",
            "new\nline",
            "back\\slash",
            "\"quoted\"",
            "*?[]",
            "é ü",
            "!",
            "-",
        ];
        assert_eq!(words_by_sh(&sh_join(&words)), words);
    }

    #[test]
    fn percent_signs_survive_ssh_token_expansion() {
        assert_eq!(ssh_tokens("plain"), "plain");
        assert_eq!(
            proxy_command(&[
                "/opt/ci tools/cli",
                "-s",
                "http://h/my%20ci/",
                "ssh-proxy",
                "job#3"
            ]),
            "'/opt/ci tools/cli' -s http://h/my%%20ci/ ssh-proxy 'job#3'"
        );
    }
}
