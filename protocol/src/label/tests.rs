use super::*;
use proptest::prelude::*;

fn atom(label: &str) -> LabelExpr {
    LabelExpr::Atom(label.into())
}

fn not(e: LabelExpr) -> LabelExpr {
    LabelExpr::Not(Box::new(e))
}

fn and(operands: Vec<LabelExpr>) -> LabelExpr {
    LabelExpr::And(operands)
}

fn or(operands: Vec<LabelExpr>) -> LabelExpr {
    LabelExpr::Or(operands)
}

fn implies(a: LabelExpr, b: LabelExpr) -> LabelExpr {
    LabelExpr::Implies(Box::new(a), Box::new(b))
}

fn iff(a: LabelExpr, b: LabelExpr) -> LabelExpr {
    LabelExpr::Iff(Box::new(a), Box::new(b))
}

/// Parses an expression the test expects to be valid and not blank.
fn expr(text: &str) -> LabelExpr {
    match parse(text) {
        Ok(Some(e)) => e,
        other => panic!("{text:?} parsed as {other:?}"),
    }
}

/// The message of the error an expression the test expects to be invalid gives.
fn error(text: &str) -> String {
    match parse(text) {
        Err(e) => e.to_string(),
        other => panic!("{text:?} parsed as {other:?}"),
    }
}

fn has(labels: &[&str]) -> impl Fn(&str) -> bool {
    let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    move |label| labels.iter().any(|l| l == label)
}

// Precedence and associativity.

#[test]
fn and_binds_tighter_than_or() {
    let expected = or(vec![atom("a"), and(vec![atom("b"), atom("c")])]);
    assert_eq!(expr("a || b && c"), expected);
    assert_eq!(expr("a || (b && c)"), expected);
    assert_eq!(
        expr("a && b || c"),
        or(vec![and(vec![atom("a"), atom("b")]), atom("c")])
    );
}

#[test]
fn not_binds_tighter_than_and() {
    assert_eq!(expr("!a && b"), and(vec![not(atom("a")), atom("b")]));
    assert_eq!(expr("!(a && b)"), not(and(vec![atom("a"), atom("b")])));
}

#[test]
fn each_level_binds_tighter_than_the_one_before() {
    assert_eq!(
        expr("a <-> b -> c || d && !e"),
        iff(
            atom("a"),
            implies(
                atom("b"),
                or(vec![atom("c"), and(vec![atom("d"), not(atom("e"))])])
            )
        )
    );
}

#[test]
fn implies_and_iff_associate_to_the_left() {
    assert_eq!(
        expr("a -> b -> c"),
        implies(implies(atom("a"), atom("b")), atom("c"))
    );
    assert_eq!(
        expr("a <-> b <-> c"),
        iff(iff(atom("a"), atom("b")), atom("c"))
    );
    assert_eq!(
        expr("a -> (b -> c)"),
        implies(atom("a"), implies(atom("b"), atom("c")))
    );
}

#[test]
fn a_chain_is_one_node_and_parentheses_keep_their_own() {
    assert_eq!(
        expr("a || b || c"),
        or(vec![atom("a"), atom("b"), atom("c")])
    );
    assert_eq!(
        expr("(a || b) || c"),
        or(vec![or(vec![atom("a"), atom("b")]), atom("c")])
    );
    assert_eq!(expr("((a))"), atom("a"));
}

// Meaning.

#[test]
fn implies_truth_table() {
    let e = expr("a -> b");
    assert!(e.matches(has(&[])));
    assert!(e.matches(has(&["b"])));
    assert!(!e.matches(has(&["a"])));
    assert!(e.matches(has(&["a", "b"])));
}

#[test]
fn iff_truth_table() {
    let e = expr("a <-> b");
    assert!(e.matches(has(&[])));
    assert!(!e.matches(has(&["b"])));
    assert!(!e.matches(has(&["a"])));
    assert!(e.matches(has(&["a", "b"])));
}

#[test]
fn not_and_or_mean_what_they_say() {
    let e = expr("linux && !arm || windows");
    assert!(e.matches(has(&["linux"])));
    assert!(!e.matches(has(&["linux", "arm"])));
    assert!(e.matches(has(&["linux", "arm", "windows"])));
    assert!(!e.matches(has(&[])));
}

#[test]
fn a_node_name_is_one_of_its_labels() {
    let mut node = NodeConfig::inbound("linux-1");
    node.labels = "linux  x86_64".into();
    assert!(expr("linux-1").matches_node(&node));
    assert!(expr("linux && x86_64").matches_node(&node));
    assert!(expr("linux-1 && !arm").matches_node(&node));
    assert!(!expr("linux-2").matches_node(&node));
    assert!(!expr("linux-1 && !linux").matches_node(&node));
    assert!(!expr("\"x86_64 linux\"").matches_node(&node));
}

#[test]
fn a_node_name_with_a_space_is_matched_when_quoted() {
    let node = NodeConfig::inbound("build box");
    assert!(expr("\"build box\"").matches_node(&node));
    assert!(!expr("build").matches_node(&node));
}

#[test]
fn atoms_are_listed_once_in_order_of_appearance() {
    assert_eq!(
        expr("linux && (arm || linux) -> !\"mac os\"").atoms(),
        ["linux", "arm", "mac os"]
    );
}

// Atoms, quoting and whitespace.

#[test]
fn dashes_and_angle_brackets_belong_to_atoms_unless_they_start_an_operator() {
    assert_eq!(expr("x86-64"), atom("x86-64"));
    assert_eq!(expr("a-b"), atom("a-b"));
    assert_eq!(expr("-a"), atom("-a"));
    assert_eq!(expr("a-"), atom("a-"));
    assert_eq!(expr("<a>"), atom("<a>"));
    assert_eq!(expr("a<-b"), atom("a<-b"));
    assert_eq!(expr(">"), atom(">"));
    assert_eq!(expr("a->b"), implies(atom("a"), atom("b")));
    assert_eq!(expr("a<->b"), iff(atom("a"), atom("b")));
    // The atom runs up to where `->` begins.
    assert_eq!(expr("a-->b"), implies(atom("a-"), atom("b")));
    assert_eq!(expr("a<-->b"), implies(atom("a<-"), atom("b")));
    assert_eq!(expr("a- -> >"), implies(atom("a-"), atom(">")));
}

#[test]
fn other_operator_characters_end_an_atom() {
    assert_eq!(expr("a&&b"), and(vec![atom("a"), atom("b")]));
    assert_eq!(expr("a||!b"), or(vec![atom("a"), not(atom("b"))]));
    assert_eq!(expr("(a)"), atom("a"));
}

#[test]
fn quoted_atoms_hold_anything_and_unescape() {
    assert_eq!(expr("\"my label\""), atom("my label"));
    assert_eq!(expr("\"a&&b\""), atom("a&&b"));
    assert_eq!(expr("\"a->b\" -> b"), implies(atom("a->b"), atom("b")));
    assert_eq!(expr(r#""a\"b\\c""#), atom(r#"a"b\c"#));
    assert_eq!(expr(r#""\n\r\t""#), atom("\n\r\t"));
    // Any other escaped character stands for itself.
    assert_eq!(expr(r#""\x\&""#), atom("x&"));
    // Quoting a plain label changes nothing.
    assert_eq!(expr("\"linux\""), atom("linux"));
    // Outside quotes a backslash is an ordinary character.
    assert_eq!(expr(r"a\b"), atom(r"a\b"));
}

#[test]
fn whitespace_between_tokens_is_ignored() {
    let expected = and(vec![atom("linux"), not(atom("arm"))]);
    assert_eq!(expr("linux&&!arm"), expected);
    assert_eq!(expr("  linux\t&&\n ! arm  "), expected);
    assert_eq!(expr("\u{a0}linux\u{2003}&&!arm"), expected);
    assert_eq!(expr("( linux && ! ( arm ) )"), expected);
}

#[test]
fn blank_means_any_node() {
    assert_eq!(parse(""), Ok(None));
    assert_eq!(parse("   "), Ok(None));
    assert_eq!(parse("\t\n\r\n"), Ok(None));
}

// The canonical form.

#[test]
fn display_spaces_operators_and_parenthesizes_only_where_needed() {
    let cases = [
        ("a||b&&c", "a || b && c"),
        ("(a||b)&&c", "(a || b) && c"),
        ("(a&&b)&&c", "(a && b) && c"),
        ("((a))", "a"),
        ("(a->b)->c", "a -> b -> c"),
        ("a->(b->c)", "a -> (b -> c)"),
        ("(a<->b)->c", "(a <-> b) -> c"),
        ("a<->(b<->c)", "a <-> (b <-> c)"),
        ("a -> b <-> c", "a -> b <-> c"),
        ("!(a&&b)", "!(a && b)"),
        ("!!a", "!!a"),
        ("!(!a)", "!!a"),
        ("\"linux\"", "linux"),
        ("\"my label\"&&\"a->b\"", "\"my label\" && \"a->b\""),
        (r#""a\"b\\c	d""#, r#""a\"b\\c\td""#),
        ("x86-64||a<b", "x86-64 || a<b"),
    ];
    for (text, canonical) in cases {
        let e = expr(text);
        assert_eq!(e.to_string(), canonical, "for {text:?}");
        assert_eq!(expr(canonical), e, "for {canonical:?}");
    }
}

// Errors.

#[test]
fn a_missing_operand_is_named_with_the_operator_before_it() {
    assert_eq!(
        error("linux &&"),
        "Invalid label expression ‘linux &&’: expected a label after ‘&&’ at the end"
    );
    assert_eq!(
        error("!"),
        "Invalid label expression ‘!’: expected a label after ‘!’ at the end"
    );
    assert_eq!(
        error("&& linux"),
        "Invalid label expression ‘&& linux’: expected a label, found ‘&&’ at column 1"
    );
    assert_eq!(
        error("a && )"),
        "Invalid label expression ‘a && )’: expected a label after ‘&&’, found ‘)’ at column 6"
    );
    assert_eq!(
        error("()"),
        "Invalid label expression ‘()’: expected a label after ‘(’, found ‘)’ at column 2"
    );
}

#[test]
fn two_operands_without_an_operator_are_refused() {
    assert_eq!(
        error("linux arm"),
        "Invalid label expression ‘linux arm’: expected an operator after ‘linux’, found ‘arm’ at column 7"
    );
    assert_eq!(
        error("(a \"b c\")"),
        "Invalid label expression ‘(a \"b c\")’: expected an operator after ‘a’, found ‘\"b c\"’ at column 4"
    );
    assert_eq!(
        error("(a) (b)"),
        "Invalid label expression ‘(a) (b)’: expected an operator after ‘)’, found ‘(’ at column 5"
    );
}

#[test]
fn unbalanced_parentheses_are_refused() {
    assert_eq!(
        error("a)"),
        "Invalid label expression ‘a)’: ‘)’ at column 2 has no matching ‘(’"
    );
    assert_eq!(
        error("x && (a && b"),
        "Invalid label expression ‘x && (a && b’: ‘(’ at column 6 is never closed"
    );
}

#[test]
fn a_single_ampersand_or_bar_is_refused() {
    assert_eq!(
        error("a & b"),
        "Invalid label expression ‘a & b’: ‘&’ at column 3 is not an operator (‘&&’ is)"
    );
    assert_eq!(
        error("a|b"),
        "Invalid label expression ‘a|b’: ‘|’ at column 2 is not an operator (‘||’ is)"
    );
}

#[test]
fn bad_quoted_labels_are_refused() {
    assert_eq!(
        error("a && \"b c"),
        "Invalid label expression ‘a && \"b c’: quoted label at column 6 has no closing ‘\"’"
    );
    assert_eq!(
        error(r#""b\""#),
        r#"Invalid label expression ‘"b\"’: quoted label at column 1 has no closing ‘"’"#
    );
    assert_eq!(
        error("\"\""),
        "Invalid label expression ‘\"\"’: quoted label at column 1 is empty"
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    assert_eq!(
        error("é ü"),
        "Invalid label expression ‘é ü’: expected an operator after ‘é’, found ‘ü’ at column 3"
    );
}

#[test]
fn the_length_limit_is_enforced_in_bytes() {
    let longest = "a".repeat(MAX_LABEL_EXPR_LEN);
    assert_eq!(parse(&longest), Ok(Some(atom(&longest))));
    let over = "é".repeat(MAX_LABEL_EXPR_LEN / 2 + 1);
    assert_eq!(
        error(&over),
        "Label expression of 4098 bytes is over the limit of 4096 bytes"
    );
}

#[test]
fn nested_negations_are_limited() {
    let deepest = format!("{}a", "!".repeat(MAX_LABEL_EXPR_DEPTH));
    assert!(parse(&deepest).is_ok());
    let over = format!("{}a", "!".repeat(MAX_LABEL_EXPR_DEPTH + 1));
    assert_eq!(
        error(&over),
        format!("Invalid label expression ‘{over}’: nested more than 64 levels deep at column 65")
    );
}

#[test]
fn nested_parentheses_are_limited() {
    let nested = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(parse(&nested(MAX_LABEL_EXPR_DEPTH)), Ok(Some(atom("a"))));
    let over = nested(MAX_LABEL_EXPR_DEPTH + 1);
    assert_eq!(
        error(&over),
        format!("Invalid label expression ‘{over}’: nested more than 64 levels deep at column 65")
    );
}

#[test]
fn nested_operators_are_limited_without_parentheses() {
    // `a -> a -> …` nests to the left with each arrow.
    let chain = |arrows: usize| vec!["a"; arrows + 1].join("->");
    assert!(parse(&chain(MAX_LABEL_EXPR_DEPTH)).is_ok());
    assert!(matches!(
        parse(&chain(MAX_LABEL_EXPR_DEPTH + 1)),
        Err(LabelError::Invalid {
            problem: Problem::TooDeep { .. },
            ..
        })
    ));
}

#[test]
fn hostile_nesting_up_to_the_length_limit_is_an_error_not_a_stack_overflow() {
    for unit in ["(", "!", "!(", "(a&&", "a->("] {
        let text = unit.repeat(MAX_LABEL_EXPR_LEN / unit.len());
        assert!(
            matches!(
                parse(&text),
                Err(LabelError::Invalid {
                    problem: Problem::TooDeep { .. },
                    ..
                })
            ),
            "{unit:?}"
        );
    }
}

#[test]
fn a_long_list_of_labels_does_not_nest() {
    let names: Vec<String> = (0..600).map(|n| format!("n{n}")).collect();
    let e = expr(&names.join("||"));
    assert!(matches!(&e, LabelExpr::Or(operands) if operands.len() == 600));
    assert!(e.matches(has(&["n599"])));
}

// Properties.

/// Labels of every shape: plain, with `-<>`, and ones that must be quoted (spaces, quotes,
/// backslashes, operators, control characters).
fn arb_label() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_.]{0,6}",
        "[a-z<>-]{1,6}",
        "[ -~]{1,6}",
        "[\t\n\r a\"\\\\<>-]{1,5}",
        "\\PC{1,4}",
    ]
}

fn arb_expr(label: impl Strategy<Value = String> + 'static) -> impl Strategy<Value = LabelExpr> {
    label
        .prop_map(LabelExpr::Atom)
        .prop_recursive(6, 64, 4, |inner| {
            let operands = proptest::collection::vec(inner.clone(), 2..5);
            prop_oneof![
                inner.clone().prop_map(not),
                operands.clone().prop_map(and),
                operands.prop_map(or),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| implies(a, b)),
                (inner.clone(), inner).prop_map(|(a, b)| iff(a, b)),
            ]
        })
}

/// Operator-heavy text: the pieces of expressions, well-formed or not, run together.
fn arb_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("("),
        Just(")"),
        Just("!"),
        Just("&&"),
        Just("||"),
        Just("->"),
        Just("<->"),
        Just("&"),
        Just("<"),
        Just("-"),
        Just(">"),
        Just("\""),
        Just("\\"),
        Just(" "),
        Just("a"),
        Just("é"),
    ];
    proptest::collection::vec(piece, 0..300).prop_map(|pieces| pieces.concat())
}

/// The meaning of the tree, from the definitions of the connectives.
fn truth(e: &LabelExpr, labels: &[&str]) -> bool {
    match e {
        LabelExpr::Atom(l) => labels.contains(&l.as_str()),
        LabelExpr::Not(e) => !truth(e, labels),
        LabelExpr::And(es) => es.iter().fold(true, |acc, e| acc & truth(e, labels)),
        LabelExpr::Or(es) => es.iter().fold(false, |acc, e| acc | truth(e, labels)),
        LabelExpr::Implies(a, b) => match truth(a, labels) {
            true => truth(b, labels),
            false => true,
        },
        LabelExpr::Iff(a, b) => !(truth(a, labels) ^ truth(b, labels)),
    }
}

/// What parses displays as text that parses to the same tree, within the limits.
fn check_round_trip(text: &str) {
    if let Ok(Some(e)) = parse(text) {
        let canonical = e.to_string();
        if canonical.len() <= MAX_LABEL_EXPR_LEN {
            assert_eq!(parse(&canonical), Ok(Some(e)), "{text:?} -> {canonical:?}");
        }
    }
}

const POOL: [&str; 5] = ["linux", "arm", "x86-64", "my label", "a->b"];

proptest! {
    #[test]
    fn display_parses_back_to_the_same_tree(e in arb_expr(arb_label())) {
        prop_assert_eq!(parse(&e.to_string()), Ok(Some(e)));
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in ".{0,300}") {
        check_round_trip(&text);
    }

    #[test]
    fn parse_never_panics_on_operator_soup(text in arb_text()) {
        check_round_trip(&text);
    }

    #[test]
    fn parse_never_panics_on_deep_nesting(
        opens in 0usize..2000,
        closes in 0usize..2000,
        nots in 0usize..2000,
    ) {
        let text = format!("{}{}a{}", "(".repeat(opens), "!".repeat(nots), ")".repeat(closes));
        check_round_trip(&text);
    }

    #[test]
    fn matches_agrees_with_the_truth_of_the_tree(
        e in arb_expr(proptest::sample::select(&POOL[..]).prop_map(String::from)),
        present in proptest::collection::vec(any::<bool>(), POOL.len()),
    ) {
        let labels: Vec<&str> = POOL.iter().zip(&present).filter(|(_, p)| **p).map(|(l, _)| *l).collect();
        let expected = truth(&e, &labels);
        prop_assert_eq!(e.matches(has(&labels)), expected);
        // And through the text a user would write.
        let reparsed = parse(&e.to_string()).unwrap().unwrap();
        prop_assert_eq!(reparsed.matches(has(&labels)), expected);
    }
}
