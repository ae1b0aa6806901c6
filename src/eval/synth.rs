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
