//! Synthetic datasets generated with a seeded RNG: short biographies with a question about
//! one attribute of one person (DESIGN §4 "Biography").

use crate::data::{Document, Sample};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};

const FIRST: [&str; 24] = [
    "Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Keiko", "Liam", "Maya",
    "Nikolai", "Olga", "Pedro", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wen", "Yusuf",
];
const LAST: [&str; 20] = [
    "Abbott",
    "Brennan",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Gallo",
    "Hayashi",
    "Ivanova",
    "Jansen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quiroga",
    "Rossi",
    "Schmidt",
    "Tanaka",
];
const CITIES: [&str; 20] = [
    "Lisbon", "Oslo", "Nairobi", "Lima", "Osaka", "Krakow", "Porto", "Denver", "Hanoi", "Tunis", "Quito", "Leeds",
    "Dublin", "Perth", "Seville", "Lyon", "Gdansk", "Bergen", "Cusco", "Malmo",
];
const UNIVERSITIES: [&str; 12] = [
    "Stanford University",
    "Kyoto University",
    "Uppsala University",
    "McGill University",
    "ETH Zurich",
    "University of Ghana",
    "Seoul National University",
    "Trinity College Dublin",
    "University of Chile",
    "Delft University",
    "Rice University",
    "University of Vienna",
];
const MAJORS: [&str; 12] = [
    "chemistry",
    "economics",
    "linguistics",
    "astronomy",
    "architecture",
    "statistics",
    "philosophy",
    "geology",
    "marine biology",
    "civil engineering",
    "music theory",
    "neuroscience",
];
const EMPLOYERS: [&str; 12] = [
    "Nordwind Energy",
    "Bluepeak Labs",
    "Harbor Freight Lines",
    "Solace Pharma",
    "Vantage Robotics",
    "Greenfield Foods",
    "Ironclad Security",
    "Lumen Optics",
    "Meridian Bank",
    "Orbit Aerospace",
    "Quartz Media",
    "Riverstone Capital",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

struct Person {
    name: String,
    born: String,
    birthplace: &'static str,
    university: &'static str,
    major: &'static str,
    employer: &'static str,
    city: &'static str,
}

fn person(rng: &mut StdRng, name: String) -> Person {
    Person {
        name,
        born: format!(
            "{} {}, {}",
            MONTHS.choose(rng).unwrap(),
            rng.random_range(1..=28),
            rng.random_range(1940..=2000)
        ),
        birthplace: CITIES.choose(rng).unwrap(),
        university: UNIVERSITIES.choose(rng).unwrap(),
        major: MAJORS.choose(rng).unwrap(),
        employer: EMPLOYERS.choose(rng).unwrap(),
        city: CITIES.choose(rng).unwrap(),
    }
}

/// `k` people with distinct names.
fn people(rng: &mut StdRng, k: usize) -> Vec<Person> {
    let mut names: Vec<String> = Vec::with_capacity(k);
    while names.len() < k.min(FIRST.len() * LAST.len()) {
        let name = format!("{} {}", FIRST.choose(rng).unwrap(), LAST.choose(rng).unwrap());
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.into_iter().map(|nm| person(rng, nm)).collect()
}

/// How biographies and their questions are worded. The evaluation's `synth:biography` is
/// `Standard`; training draws from `Training` (the standard wording among others); `Heldout`
/// uses wordings that training never sees, to judge whether an adapter generalises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BioStyle {
    /// The evaluation's one wording.
    Standard,
    /// Five wordings, the standard one among them.
    Training,
    /// Wordings no training draw uses.
    Heldout,
}

/// Biography templates: `{n}` name, `{b}` birth date, `{bp}` birthplace, `{m}` major,
/// `{u}` university, `{e}` employer, `{c}` city of work. The first is the standard one.
const TRAINING_TEMPLATES: [&str; 5] = [
    "{n} was born on {b} in {bp}. {n} studied {m} at {u}. After graduating, {n} worked for {e} in {c}.",
    "{n} is a graduate of {u}, where they majored in {m}. Born in {bp} on {b}, {n} later joined {e} and moved to {c}.",
    "Born on {b} in {bp}, {n} earned a degree in {m} from {u}. {n} now works at {e}, based in {c}.",
    "Name: {n}. Date of birth: {b}. Place of birth: {bp}. Education: {m}, {u}. Employer: {e}. Work city: {c}.",
    "After studying {m} at {u}, {n} took a job with {e} in {c}. {n} had been born in {bp} on {b}.",
];
const HELDOUT_TEMPLATES: [&str; 2] = [
    "{e} hired {n} to work in its {c} office. A native of {bp}, {n} was born on {b} and holds a {m} degree from {u}.",
    "The story of {n} starts in {bp}, on {b}. Years later came {m} studies at {u}, followed by a position at {e} in the city of {c}.",
];
/// Question wordings per attribute (birth date, birthplace, university, major, employer,
/// city of work); the first of each is the standard one.
const TRAINING_QUESTIONS: [[&str; 2]; 6] = [
    ["When was {n} born?", "What is the birth date of {n}?"],
    ["Where was {n} born?", "In which city was {n} born?"],
    ["Which university did {n} attend?", "Where did {n} go to university?"],
    ["What did {n} study?", "What was the major of {n}?"],
    ["Which company did {n} work for?", "Who employed {n}?"],
    ["In which city did {n} work?", "Which city did {n} work in?"],
];
const HELDOUT_QUESTIONS: [&str; 6] = [
    "On what date was {n} born?",
    "What city is {n} originally from?",
    "From which university did {n} graduate?",
    "Which subject did {n} major in?",
    "What is the name of the employer of {n}?",
    "In what city is the workplace of {n}?",
];

impl Person {
    fn fill(&self, template: &str) -> String {
        template
            .replace("{n}", &self.name)
            .replace("{bp}", self.birthplace)
            .replace("{b}", &self.born)
            .replace("{m}", self.major)
            .replace("{u}", self.university)
            .replace("{e}", self.employer)
            .replace("{c}", self.city)
    }

    /// The value of attribute `a` (0..6, in the order of the question tables).
    fn attribute(&self, a: usize) -> String {
        match a {
            0 => self.born.clone(),
            1 => self.birthplace.to_string(),
            2 => self.university.to_string(),
            3 => self.major.to_string(),
            4 => self.employer.to_string(),
            _ => self.city.to_string(),
        }
    }
}

impl BioStyle {
    fn biography(self, rng: &mut StdRng, p: &Person) -> String {
        match self {
            BioStyle::Standard => p.fill(TRAINING_TEMPLATES[0]),
            BioStyle::Training => p.fill(TRAINING_TEMPLATES.choose(rng).unwrap()),
            BioStyle::Heldout => p.fill(HELDOUT_TEMPLATES.choose(rng).unwrap()),
        }
    }

    fn question(self, rng: &mut StdRng, p: &Person, a: usize) -> String {
        let template = match self {
            BioStyle::Standard => TRAINING_QUESTIONS[a][0],
            BioStyle::Training => TRAINING_QUESTIONS[a].choose(rng).unwrap(),
            BioStyle::Heldout => HELDOUT_QUESTIONS[a],
        };
        p.fill(template)
    }
}

/// A set of `k` people, one document each (titled by the name), worded in `style`.
struct BioSet {
    people: Vec<Person>,
    docs: Vec<Document>,
}

fn bio_set(rng: &mut StdRng, k: usize, style: BioStyle) -> BioSet {
    let people = people(rng, k);
    let docs = people
        .iter()
        .map(|p| Document {
            title: p.name.clone(),
            text: style.biography(rng, p),
            ..Default::default()
        })
        .collect();
    BioSet { people, docs }
}

/// `n` biography samples of `k` people each (distinct names within a sample), deterministic
/// for a seed, with one question about one attribute of one of them. Each person is one
/// document titled by their name.
pub fn biographies(n: usize, k: usize, seed: u64, style: BioStyle) -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let set = bio_set(&mut rng, k, style);
            let target = &set.people[rng.random_range(0..set.people.len())];
            let a = rng.random_range(0..6);
            Sample {
                question: style.question(&mut rng, target, a),
                answers: vec![target.attribute(a)],
                ctxs: set.docs,
            }
        })
        .collect()
}

/// A biography set for training: `k` people worded in `style` and `questions` distinct
/// questions about them (at most 6k), each about a person of the set.
/// Returns (documents, questions).
pub fn biography_questions(
    rng: &mut StdRng,
    k: usize,
    questions: usize,
    style: BioStyle,
) -> (Vec<Document>, Vec<String>) {
    let set = bio_set(rng, k, style);
    let pairs: Vec<(usize, usize)> = (0..set.people.len())
        .flat_map(|p| (0..6).map(move |a| (p, a)))
        .collect();
    let chosen: Vec<(usize, usize)> = pairs.sample(rng, questions.min(pairs.len())).copied().collect();
    let qs = chosen
        .into_iter()
        .map(|(p, a)| style.question(rng, &set.people[p], a))
        .collect();
    (set.docs, qs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_per_seed_and_answerable() {
        let a = biographies(5, 6, 1, BioStyle::Standard);
        let b = biographies(5, 6, 1, BioStyle::Standard);
        let c = biographies(5, 6, 2, BioStyle::Standard);
        assert_eq!(
            format!("{:?}", a.iter().map(|s| (&s.question, &s.ctxs)).collect::<Vec<_>>()),
            format!("{:?}", b.iter().map(|s| (&s.question, &s.ctxs)).collect::<Vec<_>>())
        );
        assert_ne!(
            a[0].question.clone() + &a[0].ctxs[0].text,
            c[0].question.clone() + &c[0].ctxs[0].text
        );
        for s in &a {
            assert_eq!(s.ctxs.len(), 6);
            assert!(
                s.ctxs.iter().any(|d| d.text.contains(&s.answers[0])),
                "the answer is in a passage"
            );
        }
    }
}

const SUBJECTS: [&str; 12] = [
    "The river",
    "A small village",
    "The old library",
    "Every winter",
    "The market square",
    "A quiet farmer",
    "The northern road",
    "The museum guard",
    "A travelling merchant",
    "The mountain lake",
    "The harbour",
    "Our neighbour",
];
const PREDICATES: [&str; 12] = [
    "changed slowly over the years",
    "was known for its long afternoons",
    "welcomed visitors from far away",
    "kept a record of every season",
    "grew busier after the new bridge opened",
    "rarely saw heavy rain",
    "was painted in soft colours",
    "smelled of bread in the morning",
    "collected stories from travellers",
    "needed repairs after the storm",
    "stayed open late in the summer",
    "was quieter than most people expected",
];
const CODE_OBJECTS: [&str; 8] = [
    "blue door",
    "north gate",
    "red locker",
    "garden shed",
    "east tower",
    "old safe",
    "cellar",
    "boathouse",
];

/// Needle in a haystack: `k` filler documents of about `words` words each; one sentence
/// stating a secret number is inserted at a random depth of a random document; the question
/// asks for it. Deterministic for a seed.
pub fn needles(n: usize, k: usize, words: usize, seed: u64) -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut docs: Vec<Vec<String>> = (0..k)
                .map(|_| {
                    let mut sentences = Vec::new();
                    let mut count = 0;
                    while count < words {
                        let s = format!(
                            "{} {}.",
                            SUBJECTS.choose(&mut rng).unwrap(),
                            PREDICATES.choose(&mut rng).unwrap()
                        );
                        count += s.split_whitespace().count();
                        sentences.push(s);
                    }
                    sentences
                })
                .collect();
            let object = CODE_OBJECTS.choose(&mut rng).unwrap();
            let code = rng.random_range(100_000..1_000_000).to_string();
            let d = rng.random_range(0..k.max(1));
            let at = rng.random_range(0..=docs[d].len());
            docs[d].insert(at, format!("The secret code of the {object} is {code}."));
            Sample {
                question: format!("What is the secret code of the {object}?"),
                answers: vec![code],
                ctxs: docs
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| Document {
                        title: format!("Notes, part {}", i + 1),
                        text: s.join(" "),
                        ..Default::default()
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod needle_tests {
    use super::*;

    #[test]
    fn needles_are_deterministic_and_hidden_once() {
        let a = needles(3, 4, 200, 9);
        let b = needles(3, 4, 200, 9);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.question, y.question);
            assert_eq!(x.ctxs, y.ctxs);
            let hits: usize = x.ctxs.iter().map(|d| d.text.matches(&x.answers[0]).count()).sum();
            assert_eq!(hits, 1);
            assert!(x.ctxs.iter().all(|d| d.text.split_whitespace().count() >= 200));
        }
    }
}
