//! `H`: the JDK's `Random` and Jenkins' MD5 fold reproduced, and the values each `H` takes
//! for a few job names, as Jenkins picks them.

use super::super::hash::{JavaRandom, JenkinsHash, fold_md5};
use super::*;

// Expected values for `H` below come from Java, not from this code: OpenJDK 17's
// `java.security.MessageDigest` and `java.util.Random`, with Jenkins' `Hash.from` fold and
// the draws in the order Jenkins' parser makes them. The program, in outline:
//
//   static long fold(String seed) throws Exception {
//       byte[] d = MessageDigest.getInstance("MD5").digest(seed.getBytes(UTF_8));
//       for (int i = 8; i < d.length; i++) d[i % 8] ^= d[i];
//       long l = 0;
//       for (int i = 0; i < 8; i++) l = (l << 8) + (d[i] & 0xFF);
//       return l;
//   }
//   // e.g. "H H/5 H(1-31)/7 H/4 H(2-6)":
//   Random r = new Random(fold(seed));
//   int m = r.nextInt(60), h = r.nextInt(5), dom = 1 + r.nextInt(7), mon = 1 + r.nextInt(4),
//       dow = 2 + r.nextInt(5);
//   // then h, h+5, … up to 23; dom, dom+7, … up to 31; mon, mon+4, … up to 12.
//
// The values for the seeds "stuff", "junk" and "seed" agree with Jenkins' own CronTabTest
// (hashedMinute, hashSkips, repeatedHash), which ran the real parser.

#[test]
fn java_random_matches_the_jdk() {
    let mut r = JavaRandom::new(42);
    let small: Vec<i32> = (0..5).map(|_| r.next_int(10)).collect();
    assert_eq!(small, [0, 3, 8, 4, 0]);
    let power_of_two: Vec<i32> = (0..3).map(|_| r.next_int(1 << 20)).collect();
    assert_eq!(power_of_two, [987_835, 290_537, 742_088]);
    let one: Vec<i32> = (0..3).map(|_| r.next_int(1)).collect();
    assert_eq!(one, [0, 0, 0]);

    // A bound just under 2^31 rejects about 7% of draws: two of these thirty are drawn again.
    let mut r = JavaRandom::new(-7);
    let large: Vec<i32> = (0..30).map(|_| r.next_int(2_000_000_000)).collect();
    assert_eq!(
        large,
        [
            577_934_662,
            1_935_951_297,
            1_445_645_590,
            1_119_890_478,
            314_447_087,
            1_829_394_591,
            677_675_436,
            184_135_245,
            425_474_944,
            988_357_177,
            1_094_888_921,
            1_932_215_926,
            370_061_409,
            1_175_943_822,
            1_260_374_052,
            272_470_848,
            1_218_991_975,
            234_734_917,
            761_900_151,
            320_299_017,
            1_058_717_690,
            1_871_580_838,
            701_801_676,
            16_831_854,
            571_542_604,
            594_348_397,
            80_706_807,
            196_039_711,
            427_877_857,
            1_403_057_514,
        ]
    );
    // Just above 2^30 nearly half the draws are rejected: twelve here.
    let mut r = JavaRandom::new(i64::MIN);
    let half: Vec<i32> = (0..12).map(|_| r.next_int(1_073_741_825)).collect();
    assert_eq!(
        half,
        [
            516_548_029,
            663_681_053,
            251_269_761,
            715_581_077,
            542_832_677,
            827_187_473,
            49_567_875,
            377_907_320,
            590_459_143,
            672_024_888,
            276_804_524,
            790_221_947,
        ]
    );
}

#[test]
fn md5_fold_matches_jenkins() {
    for (seed, folded) in [
        ("job", -3_124_869_811_661_219_593),
        ("my-app", 1_723_789_174_045_567_487),
        ("deploy", 8_080_169_366_758_823_162),
        ("nightly", -4_227_386_298_608_433_563),
        ("folder/sub", 6_225_092_669_608_182_695),
        ("stuff", 2_004_155_035_988_854_569),
        ("junk", 557_666_253_560_616_158),
        ("seed", 2_861_380_906_562_215_379),
        ("ünïcødé/job", 1_429_746_145_889_593_274),
    ] {
        assert_eq!(fold_md5(seed), folded, "{seed}");
    }
    assert_eq!(JenkinsHash::from_seed("stuff").next(60), 56);
}

#[test]
fn h_picks_what_jenkins_picks() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("job", "H * * * *", &["31 * * * *"]),
        ("job", "H H * * *", &["31 16 * * *"]),
        ("job", "@daily", &["31 16 * * *"]),
        ("job", "H(0-29) * * * *", &["1 * * * *"]),
        ("job", "H/15 * * * *", &["1,16,31,46 * * * *"]),
        ("job", "H(0-29)/10 * * * *", &["1,11,21 * * * *"]),
        ("job", "@midnight", &["31 1 * * *"]),
        ("job", "@hourly", &["31 * * * *"]),
        ("job", "@weekly", &["31 16 * * 0"]),
        ("job", "@monthly", &["31 16 8 * *"]),
        ("job", "@yearly", &["31 16 8 12 *"]),
        ("job", "@annually", &["31 16 8 12 *"]),
        (
            "job",
            "H * * * *\nH H(8-15)/2 * * 1-5",
            &["31 * * * *", "40 9,11,13,15 * * 1,2,3,4,5"],
        ),
        (
            "job",
            "H H/5 H(1-31)/7 H/4 H(2-6)",
            &["31 0,5,10,15,20 1,8,15,22,29 3,7,11 4"],
        ),
        (
            "job",
            "H,H(5-10) * * * *\n@daily",
            &["9,31 * * * *", "19 23 * * *"],
        ),
        ("my-app", "H * * * *", &["14 * * * *"]),
        ("my-app", "H H * * *", &["14 15 * * *"]),
        ("my-app", "H(0-29) * * * *", &["14 * * * *"]),
        ("my-app", "H/15 * * * *", &["14,29,44,59 * * * *"]),
        ("my-app", "H(0-29)/10 * * * *", &["4,14,24 * * * *"]),
        ("my-app", "@midnight", &["14 0 * * *"]),
        ("my-app", "@weekly", &["14 15 * * 2"]),
        ("my-app", "@yearly", &["14 15 3 4 *"]),
        (
            "my-app",
            "H H/5 H(1-31)/7 H/4 H(2-6)",
            &["14 3,8,13,18,23 3,10,17,24,31 2,6,10 2"],
        ),
        (
            "my-app",
            "H,H(5-10) * * * *\n@daily",
            &["8,14 * * * *", "22 3 * * *"],
        ),
        ("deploy", "H * * * *", &["30 * * * *"]),
        ("deploy", "@daily", &["30 23 * * *"]),
        ("deploy", "H(0-29) * * * *", &["0 * * * *"]),
        ("deploy", "H/15 * * * *", &["0,15,30,45 * * * *"]),
        ("deploy", "@midnight", &["30 2 * * *"]),
        ("deploy", "@monthly", &["30 23 18 * *"]),
        (
            "deploy",
            "H * * * *\nH H(8-15)/2 * * 1-5",
            &["30 * * * *", "11 9,11,13,15 * * 1,2,3,4,5"],
        ),
        (
            "deploy",
            "H H/5 H(1-31)/7 H/4 H(2-6)",
            &["30 1,6,11,16,21 4,11,18,25 4,8,12 6"],
        ),
        ("nightly", "H * * * *", &["1 * * * *"]),
        ("nightly", "@daily", &["1 17 * * *"]),
        ("nightly", "H/15 * * * *", &["1,16,31,46 * * * *"]),
        ("nightly", "@midnight", &["1 2 * * *"]),
        ("nightly", "@yearly", &["1 17 11 11 *"]),
        (
            "nightly",
            "H,H(5-10) * * * *\n@daily",
            &["1,10 * * * *", "34 22 * * *"],
        ),
        ("folder/sub", "H * * * *", &["0 * * * *"]),
        ("folder/sub", "@daily", &["0 12 * * *"]),
        ("folder/sub", "H(0-29)/10 * * * *", &["0,10,20 * * * *"]),
        ("folder/sub", "@midnight", &["0 0 * * *"]),
        ("folder/sub", "@weekly", &["0 12 * * 0"]),
        ("folder/sub", "@yearly", &["0 12 15 10 *"]),
        (
            "folder/sub",
            "H * * * *\nH H(8-15)/2 * * 1-5",
            &["0 * * * *", "36 8,10,12,14 * * 1,2,3,4,5"],
        ),
        ("ünïcødé/job", "H/15 * * * *", &["13,28,43,58 * * * *"]),
        ("ünïcødé/job", "@yearly", &["13 21 4 10 *"]),
        ("stuff", "H H(12-13) * * *", &["56 13 * * *"]),
        ("stuff", "H/15 * * * *", &["11,26,41,56 * * * *"]),
        ("junk", "@hourly", &["20 * * * *"]),
        ("junk", "H(0-15)/3 * * * *", &["2,5,8,11,14 * * * *"]),
        ("junk", "H(0-3)/4 * * * *", &["2 * * * *"]),
        (
            "seed",
            "H * * * *\nH * * * *",
            &["35 * * * *", "56 * * * *"],
        ),
    ];
    for (seed, spec, expected) in cases {
        assert_eq!(
            render(&parse_seeded(spec, seed)),
            *expected,
            "{seed}: {spec:?}"
        );
    }
}

#[test]
fn comments_blank_lines_and_a_time_zone_draw_nothing() {
    // Jenkins' testTimezone: the TZ line and comments leave the draws as they were.
    let list = parse_seeded(
        "TZ=Australia/Sydney\n\n# twice an hour\r\n  H * * * *  \n\tH * * * *\n",
        "seed",
    );
    assert_eq!(list.time_zone(), Some("Australia/Sydney"));
    assert_eq!(render(&list), ["35 * * * *", "56 * * * *"]);
}
