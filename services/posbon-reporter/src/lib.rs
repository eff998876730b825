//! Posbon reporter: the daily situation report per mahalla, district, region and nation
