//! Statistics for Qlik charts: mean, median, standard deviation, percentiles and correlation over a
//! column, with NaN (Qlik's missing number) left out of every computation.

use sse_guest::{Aggregate, Function};

/// The non-missing values of a column, collected for order statistics.
#[derive(Default)]
struct Values(Vec<f64>);

impl Values {
    fn push(&mut self, value: f64) {
        if !value.is_nan() {
            self.0.push(value);
        }
    }

    /// The `p`-quantile (0 ≤ p ≤ 1) with linear interpolation between the nearest ranks (the
    /// method of Excel's PERCENTILE.INC and numpy's default); NaN for no values or p outside [0, 1].
    fn quantile(mut self, p: f64) -> f64 {
        if self.0.is_empty() || !(0.0..=1.0).contains(&p) {
            return f64::NAN;
        }
        self.0.sort_unstable_by(f64::total_cmp);
        let rank = p * (self.0.len() - 1) as f64;
        let (below, above) = (rank.floor() as usize, rank.ceil() as usize);
        self.0[below] + (self.0[above] - self.0[below]) * (rank - below as f64)
    }
}

/// Running count, mean and sum of squared deviations (Welford), stable for large columns.
#[derive(Default)]
struct Moments {
    count: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, value: f64) {
        if value.is_nan() {
            return;
        }
        self.count += 1.0;
        let delta = value - self.mean;
        self.mean += delta / self.count;
        self.m2 += delta * (value - self.mean);
    }
}

#[derive(Default)]
struct Mean(Moments);

impl Aggregate for Mean {
    type Args = f64;
    type Output = f64;
    fn update(&mut self, value: f64) {
        self.0.push(value);
    }
    fn finish(self) -> f64 {
        if self.0.count == 0.0 { f64::NAN } else { self.0.mean }
    }
}

/// The sample standard deviation (n − 1 in the denominator, as Qlik's `Stdev`).
#[derive(Default)]
struct StDev(Moments);

impl Aggregate for StDev {
    type Args = f64;
    type Output = f64;
    fn update(&mut self, value: f64) {
        self.0.push(value);
    }
    fn finish(self) -> f64 {
        if self.0.count < 2.0 { f64::NAN } else { (self.0.m2 / (self.0.count - 1.0)).sqrt() }
    }
}

#[derive(Default)]
struct Median(Values);

impl Aggregate for Median {
    type Args = f64;
    type Output = f64;
    fn update(&mut self, value: f64) {
        self.0.push(value);
    }
    fn finish(self) -> f64 {
        self.0.quantile(0.5)
    }
}

/// `Percentile(values, p)`: p is read from the first row where it is a number.
#[derive(Default)]
struct Percentile {
    values: Values,
    p: Option<f64>,
}

impl Aggregate for Percentile {
    type Args = (f64, f64);
    type Output = f64;
    fn update(&mut self, (value, p): (f64, f64)) {
        self.values.push(value);
        if self.p.is_none() && !p.is_nan() {
            self.p = Some(p);
        }
    }
    fn finish(self) -> f64 {
        self.values.quantile(self.p.unwrap_or(f64::NAN))
    }
}

/// Pearson's correlation over the rows where both values are present.
#[derive(Default)]
struct Correlation {
    count: f64,
    mean_x: f64,
    mean_y: f64,
    m2_x: f64,
    m2_y: f64,
    co_moment: f64,
}

impl Aggregate for Correlation {
    type Args = (f64, f64);
    type Output = f64;
    fn update(&mut self, (x, y): (f64, f64)) {
        if x.is_nan() || y.is_nan() {
            return;
        }
        self.count += 1.0;
        let dx = x - self.mean_x;
        self.mean_x += dx / self.count;
        let dy = y - self.mean_y;
        self.mean_y += dy / self.count;
        self.m2_x += dx * (x - self.mean_x);
        self.m2_y += dy * (y - self.mean_y);
        self.co_moment += dx * (y - self.mean_y);
    }
    fn finish(self) -> f64 {
        let denominator = (self.m2_x * self.m2_y).sqrt();
        if self.count < 2.0 || denominator == 0.0 { f64::NAN } else { self.co_moment / denominator }
    }
}

sse_guest::export_functions![
    Function::aggregate::<Mean>("Mean").params(["values"]).describe("The mean, missing values left out"),
    Function::aggregate::<Median>("Median").params(["values"]).describe("The median, missing values left out"),
    Function::aggregate::<StDev>("StDev").params(["values"]).describe("The sample standard deviation"),
    Function::aggregate::<Percentile>("Percentile")
        .params(["values", "p"])
        .describe("The p-quantile (p from 0 to 1), linearly interpolated"),
    Function::aggregate::<Correlation>("Pearson").params(["x", "y"]).describe("Pearson's correlation of two columns"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn run<A: Aggregate>(rows: impl IntoIterator<Item = A::Args>) -> A::Output {
        let mut state = A::default();
        rows.into_iter().for_each(|row| state.update(row));
        state.finish()
    }

    #[test]
    fn quantiles_interpolate_and_skip_missing() {
        assert_eq!(run::<Median>([3.0, f64::NAN, 1.0, 2.0, 10.0]), 2.5);
        assert_eq!(run::<Percentile>([(1.0, 0.25), (2.0, f64::NAN), (3.0, 0.9), (4.0, 0.0), (5.0, 0.0)]), 2.0);
        assert!(run::<Median>([]).is_nan());
    }

    #[test]
    fn moments_and_correlation() {
        assert_eq!(run::<Mean>([1.0, 2.0, f64::NAN, 6.0]), 3.0);
        assert!((run::<StDev>([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) - 2.138_089_935).abs() < 1e-9);
        assert!((run::<Correlation>([(1.0, 2.0), (2.0, 4.0), (3.0, 6.5)]) - 0.997_948_715_788).abs() < 1e-9);
        assert!(run::<Correlation>([(1.0, 1.0), (1.0, 2.0)]).is_nan());
    }
}
