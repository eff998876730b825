//! Word lists and generators for plausible Uzbek (Latin script) names:
//! mahallas, districts and mahalla inspectors. Everything here is synthetic.

use std::collections::HashSet;

use rand::RngExt;

/// Common mahalla names, used as they are.
const MAHALLA_BASES: &[&str] = &[
    "Navbahor",
    "Qatortol",
    "Bog'ishamol",
    "Guliston",
    "Do'stlik",
    "Mustaqillik",
    "Istiqlol",
    "Bunyodkor",
    "Tinchlik",
    "Nurafshon",
    "Bahor",
    "Chinor",
    "Oqtepa",
    "Beshyog'och",
    "Ko'kcha",
    "Shodlik",
    "Ittifoq",
    "Mehnat",
    "Yakkatut",
    "Navro'z",
    "Saodat",
    "Zarafshon",
    "Ulug'bek",
    "Bobur",
    "Furqat",
    "Muqimiy",
    "Cho'lpon",
    "Sayram",
    "Qoraqamish",
    "Uzumzor",
    "Anorzor",
    "Bodomzor",
    "Paxtakor",
    "Gulzor",
    "Xalqobod",
    "Chorsu",
    "Beshqayrag'och",
    "Zafar",
    "G'alaba",
    "Nurli yo'l",
    "Ma'rifat",
    "Ziyokor",
    "Farovon",
    "Oydin",
    "Yulduz",
    "Bo'ston",
    "Gulbahor",
    "Lolazor",
    "Sebzor",
    "Qorasuv",
    "Bo'zsuv",
    "Anhor",
    "Salor",
    "Ko'ksaroy",
    "Oqsaroy",
    "Ahillik",
    "Hamkorlik",
    "Mehr",
    "Oltin vodiy",
    "Kamolon",
    "Tarnov",
    "Labzak",
    "Obod",
    "Yangi hayot",
    "Nihol",
    "Kamalak",
    "Shalola",
    "Gulshan",
    "Charxpalak",
    "Olmazor",
    "Tolzor",
    "Sharq",
    "Sog'lom avlod",
    "Iqbol",
    "Umid",
    "Orzu",
    "Ibn Sino",
    "Beruniy",
    "Xorazmiy",
    "Navoiy",
    "Jomiy",
    "Ogahiy",
    "Mashrab",
    "Nodira",
    "Uvaysiy",
    "Zebuniso",
    "Ko'hna qal'a",
    "Qo'rg'oncha",
    "Qumariq",
    "Tepaqo'rg'on",
    "Sarimsoqtepa",
    "Oqqo'rg'on",
    "Chig'atoy",
    "Yangiariq",
    "Katta ariq",
    "Sohibkor",
    "Dehqonobod",
    "Bog'bon",
    "Mevazor",
    "Tong",
    "Quyosh",
];

/// Adjectives that prefix a base name ("Yangi Chinor", "Katta Bog'bon").
const MAHALLA_PREFIXES: &[&str] = &[
    "Yangi", "Eski", "Katta", "Kichik", "Yuqori", "Quyi", "O'rta", "Oq", "Ko'k",
];

/// Roots of compound names ("Gul" + "obod" = "Gulobod").
const ROOTS: &[&str] = &[
    "Gul", "Nur", "Bog'", "Yangi", "Oq", "Qora", "Ko'k", "Sariq", "Olti", "Bo'z", "Uch", "Qo'sh",
    "Baland", "Shahri", "Xalq", "Do'st", "Bahor", "Tol", "Terak", "Chinor", "Yulduz", "Oltin",
    "Kumush", "Zar", "Sho'r", "Qum", "Tosh", "Yog'", "Sog'", "Dehqon", "Bek", "Xon", "Mir", "Qiz",
    "Og'a", "Boy", "Shayx", "Sulton", "Jar", "Suv",
];

/// Endings of compound names.
const SUFFIXES: &[&str] = &[
    "obod", "qo'rg'on", "tepa", "ariq", "bog'", "ko'l", "soy", "yer", "bozor", "kent", "qishloq",
    "zor", "ota", "buloq", "qal'a", "yo'l", "saroy", "ovul", "dara", "guzar",
];

/// Male first names.
const MALE_FIRST: &[&str] = &[
    "Aziz", "Bekzod", "Jasur", "Sherzod", "Rustam", "Farrux", "Dilshod", "Otabek", "Sardor",
    "Akmal", "Ulug'bek", "Javlon", "Bobur", "Shoxrux", "Anvar", "Ravshan", "Abdulla", "Islom",
    "Jamshid", "Nodir", "Sanjar", "Mirjalol", "Alisher", "Laziz", "Temur", "Ibrohim", "Husan",
    "Hasan", "Zafar", "Baxtiyor",
];

/// Female first names.
const FEMALE_FIRST: &[&str] = &[
    "Dilnoza", "Malika", "Nigora", "Gulnora", "Shahnoza", "Madina", "Feruza", "Zarina", "Kamola",
    "Mohira", "Nodira", "Sevara", "Umida", "Dildora", "Lola", "Barno", "Muxlisa", "Nilufar",
];

/// Surname stems; the masculine form adds "ov"/"ev", the feminine "ova"/"eva".
const SURNAME_STEMS: &[&str] = &[
    "Karim", "Rahim", "Yusup", "Tursun", "Ergash", "Nazar", "Abdulla", "Xolmat", "Sodiq", "Qodir",
    "Usmon", "Rashid", "Mirzay", "Ahmad", "Aliy", "Salim", "Nurmat", "Ismoil", "Jo'ray", "Bozor",
    "Eshmat", "Toshmat", "Hamid", "Sharip", "Olim", "Zokir", "Mahmud", "Sultan", "Valiy", "Hakim",
];

/// Turns a Latin-script Uzbek name into a subject-safe token: lowercase ASCII
/// letters and digits, spaces and dashes become `_`, apostrophes vanish
/// ("Mirzo Ulug'bek" → "mirzo_ulugbek").
pub(crate) fn token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if (c == ' ' || c == '-' || c == '_') && !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

fn pick<'a, R: RngExt + ?Sized>(rng: &mut R, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

fn compound<R: RngExt + ?Sized>(rng: &mut R) -> String {
    let root = pick(rng, ROOTS);
    let suffix = pick(rng, SUFFIXES);
    // Avoid "Yangiobod"-style doubled vowels turning odd: join as is, the
    // result reads naturally in Uzbek compounds.
    format!("{root}{suffix}")
}

/// Generates mahalla names unique within one district.
#[derive(Debug, Default)]
pub(crate) struct MahallaNamer {
    used: HashSet<String>,
}

impl MahallaNamer {
    /// A namer with no names used yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A fresh name, never returned before by this namer.
    pub(crate) fn next<R: RngExt + ?Sized>(&mut self, rng: &mut R) -> String {
        for attempt in 0..64 {
            let candidate = match (attempt, rng.random_range(0..10u32)) {
                (_, 0..=4) => pick(rng, MAHALLA_BASES).to_owned(),
                (_, 5..=6) => format!(
                    "{} {}",
                    pick(rng, MAHALLA_PREFIXES),
                    pick(rng, MAHALLA_BASES)
                ),
                _ => compound(rng),
            };
            if self.used.insert(candidate.clone()) {
                return candidate;
            }
        }
        // Practically unreachable with the list sizes above; stay unique anyway.
        let mut n = 2;
        loop {
            let candidate = format!("{}-{n}", pick(rng, MAHALLA_BASES));
            if self.used.insert(candidate.clone()) {
                return candidate;
            }
            n += 1;
        }
    }
}

/// A synthetic district name (a compound like "Oqqo'rg'on" or "Zarbuloq")
/// whose token is not in `used`; the token is added to `used`.
pub(crate) fn district_name<R: RngExt + ?Sized>(rng: &mut R, used: &mut HashSet<String>) -> String {
    loop {
        let name = compound(rng);
        if used.insert(token(&name)) {
            return name;
        }
    }
}

/// A synthetic inspector name, "Firstname Surname" (e.g. "Aziz Karimov").
pub(crate) fn inspector<R: RngExt + ?Sized>(rng: &mut R) -> String {
    let stem = pick(rng, SURNAME_STEMS);
    let vowel_end = stem.ends_with(['a', 'e', 'i', 'o', 'u', 'y']);
    let (ending_m, ending_f) = if vowel_end {
        ("ev", "eva")
    } else {
        ("ov", "ova")
    };
    // About one inspector in five is a woman.
    if rng.random_range(0..5u32) == 0 {
        format!("{} {stem}{ending_f}", pick(rng, FEMALE_FIRST))
    } else {
        format!("{} {stem}{ending_m}", pick(rng, MALE_FIRST))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn tokens_are_subject_safe() {
        assert_eq!(token("Mirzo Ulug'bek"), "mirzo_ulugbek");
        assert_eq!(token("Shayxontohur"), "shayxontohur");
        assert_eq!(token("Qo'qon shahri"), "qoqon_shahri");
    }

    #[test]
    fn names_are_unique_and_ascii() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut namer = MahallaNamer::new();
        let names: Vec<String> = (0..300).map(|_| namer.next(&mut rng)).collect();
        let set: HashSet<&String> = names.iter().collect();
        assert_eq!(set.len(), names.len());
        assert!(names.iter().all(|n| n.is_ascii()), "{names:?}");
        for _ in 0..100 {
            assert!(inspector(&mut rng).is_ascii());
        }
    }
}
