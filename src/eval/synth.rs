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

fn biography(p: &Person) -> String {
    format!(
        "{n} was born on {b} in {bp}. {n} studied {m} at {u}. After graduating, {n} worked for {e} in {c}.",
        n = p.name,
        b = p.born,
        bp = p.birthplace,
        m = p.major,
        u = p.university,
        e = p.employer,
        c = p.city
    )
}

/// `n` biography samples of `k` people each (distinct names within a sample), deterministic
/// for a seed. Each person is one document titled by their name.
pub fn biographies(n: usize, k: usize, seed: u64) -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut names: Vec<String> = Vec::with_capacity(k);
            while names.len() < k.min(FIRST.len() * LAST.len()) {
                let name = format!("{} {}", FIRST.choose(&mut rng).unwrap(), LAST.choose(&mut rng).unwrap());
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            let people: Vec<Person> = names.into_iter().map(|nm| person(&mut rng, nm)).collect();
            let target = &people[rng.random_range(0..people.len())];
            let (question, answer) = match rng.random_range(0..6) {
                0 => (format!("When was {} born?", target.name), target.born.clone()),
                1 => (
                    format!("Where was {} born?", target.name),
                    target.birthplace.to_string(),
                ),
                2 => (
                    format!("Which university did {} attend?", target.name),
                    target.university.to_string(),
                ),
                3 => (format!("What did {} study?", target.name), target.major.to_string()),
                4 => (
                    format!("Which company did {} work for?", target.name),
                    target.employer.to_string(),
                ),
                _ => (
                    format!("In which city did {} work?", target.name),
                    target.city.to_string(),
                ),
            };
            Sample {
                question,
                answers: vec![answer],
                ctxs: people
                    .iter()
                    .map(|p| Document {
                        id: None,
                        title: p.name.clone(),
                        text: biography(p),
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_per_seed_and_answerable() {
        let a = biographies(5, 6, 1);
        let b = biographies(5, 6, 1);
        let c = biographies(5, 6, 2);
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
                        id: None,
                        title: format!("Notes, part {}", i + 1),
                        text: s.join(" "),
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
