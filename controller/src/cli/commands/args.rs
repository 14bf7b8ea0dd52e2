//! Parsing a command's own arguments: flags, options with a value, and positionals.
//! Options may be written with one dash or two, and `--` ends them.

use steward_protocol::shown::Shown;

use super::CommandError;

/// A command's arguments, parsed.
#[derive(Debug, Default)]
pub struct Args {
    flags: Vec<&'static str>,
    /// In the order given; an option given twice keeps both.
    values: Vec<(&'static str, String)>,
    pub positional: Vec<String>,
}

impl Args {
    /// Parses `args` given the command's flags and value options (spelled with one dash).
    pub fn parse(
        args: &[String],
        flags: &[&'static str],
        options: &[&'static str],
    ) -> Result<Args, CommandError> {
        let mut parsed = Args::default();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            if arg == "--" {
                parsed.positional.extend(iter.by_ref().cloned());
                break;
            }
            if arg.starts_with('-') && arg.len() > 1 {
                let single = if arg.starts_with("--") {
                    &arg[1..]
                } else {
                    arg.as_str()
                };
                if let Some(flag) = flags.iter().find(|f| **f == single) {
                    parsed.flags.push(flag);
                    continue;
                }
                if let Some(option) = options.iter().find(|o| **o == single) {
                    let value = iter.next().ok_or_else(|| {
                        CommandError::BadArgs(format!("Option \"{option}\" takes an operand"))
                    })?;
                    parsed.values.push((option, value.clone()));
                    continue;
                }
                return Err(CommandError::BadArgs(format!(
                    "\"{}\" is not a valid option",
                    Shown(arg)
                )));
            }
            parsed.positional.push(arg.clone());
        }
        Ok(parsed)
    }

    /// Checks that a command taking no arguments got none.
    pub fn none(args: &[String]) -> Result<(), CommandError> {
        let parsed = Args::parse(args, &[], &[])?;
        match parsed.positional.first() {
            Some(extra) => Err(CommandError::BadArgs(format!(
                "Too many arguments: {}",
                Shown(extra)
            ))),
            None => Ok(()),
        }
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.contains(&name)
    }

    /// The value of option `name`; the last one when it was given more than once.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value given for option `name`, in order (`-p A=1 -p B=2`).
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Exactly one positional argument, named `what` in the error.
    pub fn one(&self, what: &str) -> Result<&str, CommandError> {
        match self.positional.as_slice() {
            [one] => Ok(one),
            [] => Err(CommandError::BadArgs(format!(
                "Argument \"{what}\" is required"
            ))),
            _ => Err(CommandError::BadArgs(format!(
                "Too many arguments: {}",
                Shown(&self.positional[1..].join(" "))
            ))),
        }
    }

    /// Exactly two positional arguments, named `first` and `second` in the errors.
    pub fn two(&self, first: &str, second: &str) -> Result<(&str, &str), CommandError> {
        match self.positional.as_slice() {
            [a, b] => Ok((a, b)),
            [] => Err(CommandError::BadArgs(format!(
                "Argument \"{first}\" is required"
            ))),
            [_] => Err(CommandError::BadArgs(format!(
                "Argument \"{second}\" is required"
            ))),
            _ => Err(CommandError::BadArgs(format!(
                "Too many arguments: {}",
                Shown(&self.positional[2..].join(" "))
            ))),
        }
    }

    /// At most one positional argument.
    pub fn optional_one(&self) -> Result<Option<&str>, CommandError> {
        match self.positional.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(CommandError::BadArgs(format!(
                "Too many arguments: {}",
                Shown(&self.positional[1..].join(" "))
            ))),
        }
    }

    /// One or more positional arguments.
    pub fn at_least_one(&self, what: &str) -> Result<&[String], CommandError> {
        if self.positional.is_empty() {
            return Err(CommandError::BadArgs(format!(
                "Argument \"{what}\" is required"
            )));
        }
        Ok(&self.positional)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_options_and_positionals() {
        let a = Args::parse(
            &v(&["-m", "down for maint", "--f", "a", "b"]),
            &["-f"],
            &["-m"],
        )
        .unwrap();
        assert!(a.flag("-f"));
        assert_eq!(a.value("-m"), Some("down for maint"));
        assert_eq!(a.positional, ["a", "b"]);
        let a = Args::parse(&v(&["-p", "A=1", "-p", "A=2", "-p", "B=3"]), &[], &["-p"]).unwrap();
        assert_eq!(a.values("-p"), ["A=1", "A=2", "B=3"]);
        assert_eq!(a.value("-p"), Some("B=3"));
    }

    #[test]
    fn unknown_options_and_missing_values_are_bad_args() {
        assert!(
            matches!(Args::parse(&v(&["-x"]), &[], &[]), Err(CommandError::BadArgs(m)) if m == "\"-x\" is not a valid option")
        );
        assert!(matches!(
            Args::parse(&v(&["-m"]), &[], &["-m"]),
            Err(CommandError::BadArgs(_))
        ));
        let a = Args::parse(&v(&["--", "-x"]), &[], &[]).unwrap();
        assert_eq!(a.one("NAME").unwrap(), "-x");
    }
}
