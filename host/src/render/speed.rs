//! How fast this host renders FFmpeg specs, measured: render seconds per second of output at
//! the reference 1920×1080, 30 fps (work scales with pixels × frames). Seeded from the render
//! bench on this machine kind (1080p30: 4.65 s for 10 s of output, BENCHMARKS.md) rounded up,
//! then each finished spec render moves it (an exponential average, so one slow render on a
//! busy host does not swing it). A spec whose render would outlast the render timeout at this
//! speed is refused before it is queued: it could never finish, yet would hold a slot for an
//! hour and cost its customer the attempt.

use std::sync::Mutex;

/// The seed: render seconds per output second at 1080p30 (measured 0.465, rounded up).
const SEED: f64 = 0.5;
/// Weight of the newest render in the average.
const WEIGHT: f64 = 0.2;
/// Work below this share of 1080p30 still pays FFmpeg's fixed costs (decode, mux).
const FLOOR: f64 = 0.25;

pub struct RenderSpeed(Mutex<f64>);

impl Default for RenderSpeed {
    fn default() -> Self {
        Self(Mutex::new(SEED))
    }
}

impl RenderSpeed {
    /// The share of 1080p30's work a frame size and rate is (never below [`FLOOR`]).
    fn scale(width: u32, height: u32, fps: u32) -> f64 {
        (f64::from(width) * f64::from(height) * f64::from(fps) / (1920.0 * 1080.0 * 30.0)).max(FLOOR)
    }

    /// Expected render seconds for `seconds` of output at this size and rate.
    pub fn estimate(&self, seconds: f64, width: u32, height: u32, fps: u32) -> f64 {
        let per_second = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        seconds * per_second * Self::scale(width, height, fps)
    }

    /// Fold in a finished render: `took` seconds for `seconds` of output.
    pub fn observe(&self, took: f64, seconds: f64, width: u32, height: u32, fps: u32) {
        if !(took.is_finite() && seconds >= 1.0 && took > 0.0) {
            return;
        }
        let observed = took / seconds / Self::scale(width, height, fps);
        let mut speed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *speed = *speed * (1.0 - WEIGHT) + observed * WEIGHT;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_three_hour_1080p_spec_takes_longer_than_an_hour_here() {
        let speed = RenderSpeed::default();
        assert!(speed.estimate(3.0 * 3600.0, 1920, 1080, 30) > 3600.0);
        assert!(speed.estimate(600.0, 1920, 1080, 30) < 3600.0);
    }

    #[test]
    fn slow_renders_raise_the_estimate() {
        let speed = RenderSpeed::default();
        let before = speed.estimate(60.0, 1280, 720, 30);
        for _ in 0..10 {
            speed.observe(60.0, 10.0, 1280, 720, 30);
        }
        assert!(speed.estimate(60.0, 1280, 720, 30) > 3.0 * before);
    }
}
