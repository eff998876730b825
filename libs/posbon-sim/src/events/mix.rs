//! What happens, when and how often: the category mix, daily and weekly
//! cycles, and the fields of each kind of event.

use posbon_model::{
    Detection, FraudChannel, FraudScheme, IncidentCategory, IncidentFlags, IncidentStatus,
    PaymentSystem,
};
use rand::RngExt;

use crate::city::normal;

/// Share of cybercrime and fraud among offences (incidents and fraud flags):
/// 42%, as reported in 2024 national statistics (cyber and fraud offences
/// made up about 42% of registered crime in Uzbekistan).
pub const CYBER_FRAUD_SHARE: f64 = 0.42;

/// Share of camera alerts among all events.
pub(crate) const CAMERA_SHARE: f64 = 0.12;

/// Share of all events injected as fraud waves.
pub(crate) const WAVE_SHARE: f64 = 0.02;

/// Share of all events injected as drug hand-off hotspots.
pub(crate) const HOTSPOT_SHARE: f64 = 0.01;

/// Branching ratio of the near-repeat (self-exciting) process: mean number
/// of follow-up offences each physical offence triggers.
pub(crate) const BRANCHING: f64 = 0.25;

/// Mean delay of a follow-up offence, hours (exponential kernel).
pub(crate) const NEAR_REPEAT_MEAN_H: f64 = 36.0;

/// Follow-up offences happen within this distance of their parent, metres.
pub(crate) const NEAR_REPEAT_RADIUS_M: f64 = 200.0;

/// Time-of-day and day-of-week shape of an activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// Evenings and nights, weekends (assault, hooliganism, robbery).
    Night,
    /// Office hours, weekdays (fraud, cybercrime).
    Day,
    /// Afternoons and evenings (theft, street activity, cameras).
    Street,
    /// Evenings, weekends (domestic violence).
    Home,
}

const NIGHT: [f64; 24] = [
    1.6, 1.5, 1.3, 1.0, 0.6, 0.4, 0.3, 0.35, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0,
    1.2, 1.4, 1.6, 1.8, 1.9, 1.8,
];
const DAY: [f64; 24] = [
    0.25, 0.15, 0.1, 0.1, 0.1, 0.15, 0.3, 0.6, 1.0, 1.4, 1.6, 1.7, 1.6, 1.6, 1.7, 1.7, 1.6, 1.5,
    1.4, 1.3, 1.1, 0.9, 0.6, 0.4,
];
const STREET: [f64; 24] = [
    0.5, 0.4, 0.35, 0.3, 0.25, 0.3, 0.5, 0.8, 1.0, 1.1, 1.2, 1.3, 1.3, 1.3, 1.3, 1.4, 1.5, 1.6,
    1.6, 1.5, 1.4, 1.2, 1.0, 0.7,
];
const HOME: [f64; 24] = [
    0.9, 0.6, 0.4, 0.3, 0.2, 0.2, 0.3, 0.5, 0.6, 0.6, 0.6, 0.7, 0.8, 0.8, 0.9, 1.0, 1.1, 1.3, 1.6,
    1.9, 2.1, 2.0, 1.7, 1.3,
];

impl Profile {
    fn hourly(self) -> &'static [f64; 24] {
        match self {
            Profile::Night => &NIGHT,
            Profile::Day => &DAY,
            Profile::Street => &STREET,
            Profile::Home => &HOME,
        }
    }

    /// Day-of-week factor, Monday = 0.
    fn weekly(self, weekday: u32) -> f64 {
        match (self, weekday) {
            (Profile::Night, 4) => 1.1,
            (Profile::Night, 5) => 1.35,
            (Profile::Night, 6) => 1.2,
            (Profile::Night, _) => 0.87,
            (Profile::Day, 5) => 0.8,
            (Profile::Day, 6) => 0.65,
            (Profile::Day, _) => 1.11,
            (Profile::Street, 5 | 6) => 1.15,
            (Profile::Street, _) => 0.94,
            (Profile::Home, 5 | 6) => 1.3,
            (Profile::Home, _) => 0.88,
        }
    }

    /// Relative intensity at a local hour and weekday; averages to 1 over a
    /// week.
    pub(crate) fn factor(self, hour: u32, weekday: u32) -> f64 {
        let h = self.hourly();
        let mean_h: f64 = h.iter().sum::<f64>() / 24.0;
        let mean_w: f64 = (0..7).map(|d| self.weekly(d)).sum::<f64>() / 7.0;
        h[(hour % 24) as usize] / mean_h * self.weekly(weekday % 7) / mean_w
    }
}

/// What a background stream produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum What {
    /// An incident of a category.
    Incident(IncidentCategory),
    /// A fraud flag.
    Fraud,
    /// A camera alert.
    Camera,
}

impl What {
    /// Cybercrime and fraud: fraud flags and incidents of those categories.
    pub(crate) fn is_cyber(self) -> bool {
        matches!(
            self,
            What::Fraud | What::Incident(IncidentCategory::Fraud | IncidentCategory::Cybercrime)
        )
    }

    /// Whether an offence of this kind triggers near-repeat follow-ups.
    pub(crate) fn self_exciting(self) -> bool {
        use IncidentCategory as C;
        matches!(
            self,
            What::Incident(
                C::Theft
                    | C::Robbery
                    | C::Assault
                    | C::DrugTrafficking
                    | C::DrugUse
                    | C::Vandalism
                    | C::Hooliganism
                    | C::Weapons
                    | C::PublicOrder
            )
        )
    }
}

/// One background stream: a kind of event, its share of offences (or of
/// all events, for cameras) and its daily shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamSpec {
    pub(crate) what: What,
    /// Final share among offences (incidents + fraud flags); for cameras,
    /// among all events.
    pub(crate) share: f64,
    pub(crate) profile: Profile,
}

/// The final mix of offences (fraud flags, fraud and cybercrime add up to
/// [`CYBER_FRAUD_SHARE`]) and of camera alerts.
pub(crate) const STREAMS: [StreamSpec; 16] = {
    use IncidentCategory as C;
    const fn s(what: What, share: f64, profile: Profile) -> StreamSpec {
        StreamSpec {
            what,
            share,
            profile,
        }
    }
    [
        s(What::Fraud, 0.30, Profile::Day),
        s(What::Incident(C::Fraud), 0.06, Profile::Day),
        s(What::Incident(C::Cybercrime), 0.06, Profile::Day),
        s(What::Incident(C::Theft), 0.18, Profile::Street),
        s(What::Incident(C::Robbery), 0.03, Profile::Night),
        s(What::Incident(C::Assault), 0.07, Profile::Night),
        s(What::Incident(C::Homicide), 0.003, Profile::Night),
        s(What::Incident(C::DrugTrafficking), 0.025, Profile::Night),
        s(What::Incident(C::DrugUse), 0.035, Profile::Night),
        s(What::Incident(C::DomesticViolence), 0.06, Profile::Home),
        s(What::Incident(C::Vandalism), 0.03, Profile::Night),
        s(What::Incident(C::Hooliganism), 0.08, Profile::Night),
        s(What::Incident(C::Weapons), 0.01, Profile::Night),
        s(What::Incident(C::PublicOrder), 0.04, Profile::Street),
        s(What::Incident(C::Other), 0.017, Profile::Street),
        s(What::Camera, CAMERA_SHARE, Profile::Street),
    ]
};

fn pick<T: Copy, R: RngExt + ?Sized>(rng: &mut R, items: &[(T, f64)]) -> T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (item, w) in items {
        if x < *w {
            return *item;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

/// Severity 1..=5 of an incident of a category.
pub(crate) fn severity<R: RngExt + ?Sized>(rng: &mut R, c: IncidentCategory) -> u8 {
    use IncidentCategory as C;
    let (lo, hi) = match c {
        C::Homicide => (5, 5),
        C::Weapons => (3, 5),
        C::Robbery | C::DrugTrafficking => (3, 4),
        C::Assault | C::DomesticViolence => (2, 4),
        C::DrugUse | C::Fraud | C::Cybercrime => (2, 3),
        C::Theft | C::Hooliganism => (1, 3),
        _ => (1, 2),
    };
    rng.random_range(lo..=hi)
}

/// Victim and offender flags typical of a category.
pub(crate) fn flags<R: RngExt + ?Sized>(rng: &mut R, c: IncidentCategory) -> IncidentFlags {
    use IncidentCategory as C;
    let mut f = IncidentFlags::default();
    match c {
        C::DomesticViolence => {
            f.domestic = true;
            f.victim_woman = rng.random_bool(0.8);
            f.victim_minor = rng.random_bool(0.1);
        }
        C::Hooliganism | C::Vandalism | C::Assault => {
            f.offender_youth = rng.random_bool(0.45);
            f.offender_minor = rng.random_bool(0.08);
        }
        C::Theft | C::Robbery => {
            f.offender_minor = rng.random_bool(0.05);
            f.victim_woman = rng.random_bool(0.4);
        }
        C::Fraud | C::Cybercrime => {
            f.victim_youth = rng.random_bool(0.35);
            f.victim_woman = rng.random_bool(0.45);
        }
        C::DrugUse | C::DrugTrafficking => f.offender_youth = rng.random_bool(0.5),
        _ => {}
    }
    f
}

/// Report status.
pub(crate) fn status<R: RngExt + ?Sized>(rng: &mut R) -> IncidentStatus {
    pick(
        rng,
        &[
            (IncidentStatus::Reported, 70.0),
            (IncidentStatus::Confirmed, 20.0),
            (IncidentStatus::UnderInvestigation, 7.0),
            (IncidentStatus::Closed, 2.0),
            (IncidentStatus::Unfounded, 1.0),
        ],
    )
}

/// Producing system of an incident.
pub(crate) fn incident_source<R: RngExt + ?Sized>(
    rng: &mut R,
    c: IncidentCategory,
) -> &'static str {
    if matches!(c, IncidentCategory::Cybercrime | IncidentCategory::Fraud) && rng.random_bool(0.5) {
        return "e-murojaat";
    }
    pick(
        rng,
        &[
            ("iiv-102", 55.0),
            ("mahalla-inspector", 25.0),
            ("e-murojaat", 10.0),
            ("patrol", 10.0),
        ],
    )
}

/// A short description in Uzbek, or none.
pub(crate) fn description<R: RngExt + ?Sized>(rng: &mut R, c: IncidentCategory) -> Option<String> {
    use IncidentCategory as C;
    if rng.random_bool(0.4) {
        return None;
    }
    let list: &[&str] = match c {
        C::Theft => &[
            "Uyali telefon o'g'irlangan",
            "Do'kondan mol o'g'irlangan",
            "Avtomashinadan buyumlar o'g'irlangan",
            "Velosiped o'g'irlangan",
            "Xonadondan pul o'g'irlangan",
        ],
        C::Robbery => &["Sumka tortib olingan", "Ko'chada telefon tortib olingan"],
        C::Assault => &["Janjal paytida tan jarohati yetkazilgan", "Mushtlashuv"],
        C::Homicide => &["Qotillik holati"],
        C::DrugTrafficking => &[
            "Giyohvand moddalar savdosi gumon qilinmoqda",
            "Zakladka aniqlandi",
        ],
        C::DrugUse => &["Giyohvand modda iste'mol qilgan shaxs aniqlandi"],
        C::DomesticViolence => &["Oilaviy zo'ravonlik haqida murojaat", "Oilaviy janjal"],
        C::Fraud => &[
            "Firibgarlik yo'li bilan pul olingan",
            "Soxta e'lon orqali aldangan",
        ],
        C::Cybercrime => &[
            "Telegram akkaunti buzib kirilgan",
            "Bank kartasi ma'lumotlari o'g'irlangan",
        ],
        C::Vandalism => &[
            "Jamoat mulkiga zarar yetkazilgan",
            "Avtobus bekati buzilgan",
        ],
        C::Hooliganism => &["Jamoat joyida bezorilik", "Tungi shovqin va janjal"],
        C::Weapons => &["Noqonuniy qurol saqlash", "Pichoq bilan tahdid"],
        C::PublicOrder => &["Jamoat tartibini buzish", "Mast holda jamoat joyida"],
        C::Other => &["Boshqa huquqbuzarlik"],
    };
    Some(list[rng.random_range(0..list.len())].to_owned())
}

/// Location accuracy of an incident report, metres.
pub(crate) fn incident_accuracy<R: RngExt + ?Sized>(rng: &mut R) -> f64 {
    f64::from(rng.random_range(5..=60u32))
}

/// What a camera saw in the background (not a hotspot), with a confidence.
pub(crate) fn camera_detection<R: RngExt + ?Sized>(rng: &mut R) -> (Detection, f64) {
    let d = pick(
        rng,
        &[
            (Detection::Loitering, 28.0),
            (Detection::Crowd, 20.0),
            (Detection::PlateMatch, 15.0),
            (Detection::Fight, 9.0),
            (Detection::Intrusion, 8.0),
            (Detection::Other, 10.0),
            (Detection::DrugHandoff, 6.0),
            (Detection::Weapon, 4.0),
        ],
    );
    // Background drug hand-off detections are mostly weak.
    let conf = if d == Detection::DrugHandoff {
        rng.random_range(0.35..0.82)
    } else {
        rng.random_range(0.45..0.99)
    };
    (d, (conf * 1000.0_f64).round() / 1000.0)
}

/// Video-analytics model names.
pub(crate) fn camera_model<R: RngExt + ?Sized>(rng: &mut R) -> &'static str {
    pick(
        rng,
        &[("uzvision-va-3.2", 60.0), ("safecity-detector-2.8", 40.0)],
    )
}

/// A fraud scheme with a channel that fits it.
pub(crate) fn fraud_scheme<R: RngExt + ?Sized>(rng: &mut R) -> FraudScheme {
    pick(
        rng,
        &[
            (FraudScheme::CardFraud, 25.0),
            (FraudScheme::Phishing, 20.0),
            (FraudScheme::ScamCall, 20.0),
            (FraudScheme::FakeMarketplace, 15.0),
            (FraudScheme::AccountTakeover, 10.0),
            (FraudScheme::InvestmentScam, 5.0),
            (FraudScheme::Other, 5.0),
        ],
    )
}

/// A channel that fits a scheme.
pub(crate) fn fraud_channel<R: RngExt + ?Sized>(rng: &mut R, s: FraudScheme) -> FraudChannel {
    use FraudChannel as Ch;
    let options: &[(Ch, f64)] = match s {
        FraudScheme::CardFraud => &[(Ch::Card, 80.0), (Ch::OnlineBanking, 20.0)],
        FraudScheme::Phishing => &[
            (Ch::Sms, 40.0),
            (Ch::Messenger, 40.0),
            (Ch::OnlineBanking, 20.0),
        ],
        FraudScheme::ScamCall => &[(Ch::PhoneCall, 85.0), (Ch::Messenger, 15.0)],
        FraudScheme::FakeMarketplace => &[(Ch::Marketplace, 60.0), (Ch::Messenger, 40.0)],
        FraudScheme::AccountTakeover => &[(Ch::MobileApp, 60.0), (Ch::OnlineBanking, 40.0)],
        FraudScheme::InvestmentScam => &[(Ch::Messenger, 70.0), (Ch::PhoneCall, 30.0)],
        FraudScheme::Other => &[(Ch::Other, 50.0), (Ch::MobileApp, 50.0)],
    };
    pick(rng, options)
}

/// A payment system.
pub(crate) fn payment_system<R: RngExt + ?Sized>(rng: &mut R) -> PaymentSystem {
    pick(
        rng,
        &[
            (PaymentSystem::Uzcard, 45.0),
            (PaymentSystem::Humo, 35.0),
            (PaymentSystem::Visa, 12.0),
            (PaymentSystem::Mastercard, 6.0),
            (PaymentSystem::Unionpay, 1.0),
            (PaymentSystem::Other, 1.0),
        ],
    )
}

/// A masked card or account reference fitting the payment system.
pub(crate) fn account_ref<R: RngExt + ?Sized>(rng: &mut R, p: PaymentSystem) -> String {
    let prefix = match p {
        PaymentSystem::Uzcard => "8600",
        PaymentSystem::Humo => "9860",
        PaymentSystem::Visa => "4169",
        PaymentSystem::Mastercard => "5440",
        PaymentSystem::Unionpay => "6262",
        PaymentSystem::Other => "acct",
    };
    format!("{prefix}********{:04}", rng.random_range(0..10_000u32))
}

/// Amount in soum: log-normal around 1.5 million, whole thousands.
pub(crate) fn amount_uzs<R: RngExt + ?Sized>(rng: &mut R) -> f64 {
    let v = 1_500_000.0 * (1.2 * normal(rng)).exp();
    ((v / 1000.0).round() * 1000.0).clamp(1000.0, 5e9)
}

/// Banks' anti-fraud systems.
pub(crate) fn fraud_source<R: RngExt + ?Sized>(rng: &mut R) -> &'static str {
    pick(
        rng,
        &[
            ("bank-kapitalbank-antifraud", 18.0),
            ("bank-xalq-antifraud", 15.0),
            ("bank-agrobank-antifraud", 12.0),
            ("bank-hamkorbank-antifraud", 12.0),
            ("bank-ipakyuli-antifraud", 10.0),
            ("bank-anorbank-antifraud", 8.0),
            ("bank-tbc-antifraud", 10.0),
            ("uzum-bank-antifraud", 15.0),
        ],
    )
}

/// A Poisson sample (Knuth for small means, normal approximation above 30).
pub(crate) fn poisson<R: RngExt + ?Sized>(rng: &mut R, mean: f64) -> u64 {
    if mean.is_nan() || mean <= 0.0 {
        return 0;
    }
    if mean < 30.0 {
        let limit = (-mean).exp();
        let mut k = 0;
        let mut p = rng.random::<f64>();
        while p > limit {
            k += 1;
            p *= rng.random::<f64>();
        }
        k
    } else {
        (mean + mean.sqrt() * normal(rng) + 0.5).floor().max(0.0) as u64
    }
}

/// An exponential sample with the given mean.
pub(crate) fn exponential<R: RngExt + ?Sized>(rng: &mut R, mean: f64) -> f64 {
    -(1.0 - rng.random::<f64>()).ln() * mean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offence_shares_add_up() {
        let offences: f64 = STREAMS
            .iter()
            .filter(|s| s.what != What::Camera)
            .map(|s| s.share)
            .sum();
        assert!((offences - 1.0).abs() < 1e-9, "{offences}");
        let cyber: f64 = STREAMS
            .iter()
            .filter(|s| s.what.is_cyber())
            .map(|s| s.share)
            .sum();
        assert!((cyber - CYBER_FRAUD_SHARE).abs() < 1e-9);
    }

    #[test]
    fn profiles_average_to_one() {
        for p in [Profile::Night, Profile::Day, Profile::Street, Profile::Home] {
            let mut sum = 0.0;
            for d in 0..7 {
                for h in 0..24 {
                    sum += p.factor(h, d);
                }
            }
            assert!((sum / 168.0 - 1.0).abs() < 0.02, "{p:?} {}", sum / 168.0);
        }
    }
}
