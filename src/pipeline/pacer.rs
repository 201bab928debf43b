//! The output's frame clock: exactly one frame per frame period, stamped on
//! the output pipeline's clock, whatever the capture does. A slot takes the
//! next captured frame; when none came in time it repeats the previous one
//! (constant frame rate, counted as `frames_repeated`); once nothing came
//! for `input_loss_ms` the input is lost: the last frame goes on for
//! `repeat_frame_ms`, then the slate, until captured frames return. The
//! encoders downstream never see a gap, so GOPs stay fixed and IDRs aligned.

use super::input::Feed;
use super::slate::Slate;
use super::stats::PipelineStats;
use crate::config::Fps;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};

/// What one output slot carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// The next captured frame.
    Live,
    /// The previous frame again.
    Repeat,
    Slate,
    /// Nothing yet (no frame captured since the start, no slate ready).
    Nothing,
}

/// A change of the input's state, seen at a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Lost,
    Back,
}

/// Decides each slot from times alone (nanoseconds on the output clock): pure.
#[derive(Debug, Clone)]
pub struct LossClock {
    after_ns: u64,
    repeat_ns: u64,
    /// The last captured frame (or the start, before the first).
    last_real_ns: u64,
    lost: bool,
}

impl LossClock {
    pub fn new(after: Duration, repeat: Duration, start_ns: u64) -> LossClock {
        LossClock { after_ns: after.as_nanos() as u64, repeat_ns: repeat.as_nanos() as u64, last_real_ns: start_ns, lost: false }
    }

    pub fn lost(&self) -> bool {
        self.lost
    }

    /// New timings, taken from the next slot on (a live `configure`): an
    /// input already lost stays lost; one not lost yet is judged by them.
    pub fn retime(&mut self, after: Duration, repeat: Duration) {
        self.after_ns = after.as_nanos() as u64;
        self.repeat_ns = repeat.as_nanos() as u64;
    }

    /// `fresh`: a captured frame waits for this slot; `have_last`: there is
    /// a frame to repeat; `have_slate`: a slate frame is ready.
    pub fn pick(&mut self, now_ns: u64, fresh: bool, have_last: bool, have_slate: bool) -> (Pick, Option<Change>) {
        if fresh {
            self.last_real_ns = now_ns;
            let back = std::mem::replace(&mut self.lost, false).then_some(Change::Back);
            return (Pick::Live, back);
        }
        let silent = now_ns.saturating_sub(self.last_real_ns);
        let mut change = None;
        if !self.lost && silent >= self.after_ns {
            self.lost = true;
            change = Some(Change::Lost);
        }
        let slate_due = self.lost && (silent >= self.after_ns + self.repeat_ns || !have_last);
        let pick = match (slate_due && have_slate, have_last) {
            (true, _) => Pick::Slate,
            (false, true) => Pick::Repeat,
            (false, false) => Pick::Nothing,
        };
        (pick, change)
    }
}

/// The running time of slot `k` counted from `start_ns`, exact for
/// fractional rates (no drift: computed, never accumulated).
pub fn slot_ns(start_ns: u64, k: u64, fps: Fps) -> u64 {
    start_ns + (u128::from(k) * 1_000_000_000 * u128::from(fps.den) / u128::from(fps.num)) as u64
}

/// The slot at or after `t_ns`.
fn slot_at(start_ns: u64, t_ns: u64, fps: Fps) -> u64 {
    let elapsed = u128::from(t_ns.saturating_sub(start_ns));
    let per = 1_000_000_000u128 * u128::from(fps.den);
    (elapsed * u128::from(fps.num)).div_ceil(per) as u64
}

/// A slot this late is given up (and every late one with it) rather than
/// sending a backlog faster than real time.
const GIVE_UP_AFTER: Duration = Duration::from_secs(1);
/// At most one warning about repeated frames this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// New input-loss handling for the running frame clock (a live
/// `configure`): the timings, and a new slate when the image changed.
pub struct LossUpdate {
    pub after: Duration,
    pub repeat: Duration,
    pub slate: Option<Slate>,
}

/// Where an update waits for the frame clock's next slot.
pub type LossUpdates = Arc<Mutex<Option<LossUpdate>>>;

pub struct PacerSetup {
    pub appsrc: gst_app::AppSrc,
    pub pipeline: gst::Pipeline,
    pub feed: Arc<Feed>,
    pub slate: Slate,
    /// Muted while the slate is on (the separate audio source).
    pub mute: Option<gst::Element>,
    pub stats: Arc<PipelineStats>,
    pub fps: Fps,
    pub after: Duration,
    pub repeat: Duration,
    pub updates: LossUpdates,
    pub stop: Arc<AtomicBool>,
    /// Where a stop finds the clock wait to cancel.
    pub waiting: Arc<Mutex<Option<gst::SingleShotClockId>>>,
}

/// Runs the frame clock until stopped or the input ended for good.
pub fn run(mut s: PacerSetup) {
    let Some((clock, base)) = wait_playing(&s.pipeline, &s.stop) else { return };
    let now = || clock.time().saturating_sub(base).nseconds();
    let frame_ns = slot_ns(0, 1, s.fps);
    let rt_now = now();
    let start = rt_now + frame_ns;
    // Where slot 0 falls since 1970 (read by `epoch_aligned` outputs).
    let unix_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    s.stats.epoch.record(start, unix_now + u128::from(frame_ns), s.fps);
    let mut loss = LossClock::new(s.after, s.repeat, start);
    let mut last: Option<gst::Buffer> = None;
    let mut slate_frame: Option<gst::Buffer> = None;
    let mut k = 0u64;
    let (mut repeated_since_warn, mut warned_at) = (0u64, Instant::now() - WARN_EVERY);
    while !s.stop.load(Ordering::Acquire) {
        let pts = slot_ns(start, k, s.fps);
        let id = clock.new_single_shot_id(gst::ClockTime::from_nseconds(base.nseconds() + pts));
        *s.waiting.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
        let _ = id.wait();
        *s.waiting.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if s.stop.load(Ordering::Acquire) {
            break;
        }
        let late = now().saturating_sub(pts);
        if late > GIVE_UP_AFTER.as_nanos() as u64 {
            let next = slot_at(start, now(), s.fps);
            warn!(slots = next - k, "the output fell behind real time; skipping ahead");
            k = next;
            continue;
        }
        k += 1;
        if s.feed.ended() && s.feed.is_empty() {
            break;
        }
        let update = s.updates.try_lock().ok().and_then(|mut u| u.take());
        if let Some(u) = update {
            loss.retime(u.after, u.repeat);
            (s.after, s.repeat) = (u.after, u.repeat);
            if let Some(slate) = u.slate {
                // The new slate takes over at once, also while it is on air.
                if loss.lost() {
                    s.slate.stop();
                    slate.start();
                }
                s.slate = slate;
                slate_frame = None;
            }
            info!(after_ms = u.after.as_millis() as u64, repeat_ms = u.repeat.as_millis() as u64, "input-loss handling changed live");
        }
        let fresh = s.feed.pop();
        if loss.lost()
            && let Some(f) = s.slate.newest()
        {
            slate_frame = Some(f);
        }
        let (pick, change) = loss.pick(pts, fresh.is_some(), last.is_some(), slate_frame.is_some());
        match change {
            Some(Change::Lost) => {
                info!(after_ms = s.after.as_millis() as u64, "input lost: repeating the last frame, then the slate");
                s.stats.set_lost(SystemTime::now() - s.after);
                s.slate.start();
            }
            Some(Change::Back) => {
                info!("input back: live picture again");
                s.stats.set_back();
                s.slate.stop();
                slate_frame = None;
                if let Some(m) = &s.mute {
                    m.set_property("mute", false);
                }
            }
            None => {}
        }
        let buffer = match pick {
            // A live frame goes out as itself (retimed in place: the frame
            // clock holds the only reference), so once every element is done
            // with it it returns to the capture's buffer pool. A copy
            // sharing its memory would make the pool discard it and allocate
            // a new picture for every frame.
            Pick::Live => fresh.map(|b| live(b, pts, frame_ns, &mut last)),
            Pick::Repeat => {
                s.stats.frames_repeated.fetch_add(1, Ordering::Relaxed);
                if loss.lost() {
                    s.stats.filler.mark(pts, frame_ns);
                } else {
                    repeated_since_warn += 1;
                    if warned_at.elapsed() >= WARN_EVERY {
                        warn!(frames = repeated_since_warn, "the capture skipped frames; repeated the previous frame to keep the frame rate");
                        repeated_since_warn = 0;
                        warned_at = Instant::now();
                    }
                }
                last.as_ref().map(|b| retimed_copy(b, pts, frame_ns))
            }
            Pick::Slate => {
                s.stats.slate_frames.fetch_add(1, Ordering::Relaxed);
                s.stats.filler.mark(pts, frame_ns);
                if !s.stats.input_signal().slate {
                    s.stats.set_slate(true);
                    if let Some(m) = &s.mute {
                        m.set_property("mute", true);
                    }
                }
                slate_frame.as_ref().map(|b| retimed_copy(b, pts, frame_ns))
            }
            Pick::Nothing => None,
        };
        let Some(out) = buffer else { continue };
        if s.appsrc.push_buffer(out).is_err() {
            break;
        }
    }
    s.slate.stop();
    let _ = s.appsrc.end_of_stream();
}

/// Stamps a frame for its slot of the output timeline.
fn retime(b: &mut gst::BufferRef, pts: u64, frame_ns: u64) {
    b.set_pts(gst::ClockTime::from_nseconds(pts));
    b.set_dts(gst::ClockTime::NONE);
    b.set_duration(gst::ClockTime::from_nseconds(frame_ns));
    b.unset_flags(gst::BufferFlags::DISCONT | gst::BufferFlags::GAP);
}

/// A captured frame for its slot: the same buffer, kept as the last one.
fn live(mut b: gst::Buffer, pts: u64, frame_ns: u64, last: &mut Option<gst::Buffer>) -> gst::Buffer {
    retime(b.make_mut(), pts, frame_ns);
    *last = Some(b.clone());
    b
}

/// A repeated frame or a slate frame: a new buffer sharing the picture.
fn retimed_copy(b: &gst::Buffer, pts: u64, frame_ns: u64) -> gst::Buffer {
    let mut out = b.copy();
    retime(out.make_mut(), pts, frame_ns);
    out
}

/// The output pipeline's clock and base time, once it plays.
fn wait_playing(pipeline: &gst::Pipeline, stop: &AtomicBool) -> Option<(gst::Clock, gst::ClockTime)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
        if pipeline.current_state() == gst::State::Playing
            && let (Some(clock), Some(base)) = (pipeline.clock(), pipeline.base_time())
        {
            return Some((clock, base));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if !stop.load(Ordering::Acquire) {
        warn!("the output pipeline never reached PLAYING; no frames will be sent");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Runs slots every 33 ms; `captured(i)` says whether slot `i` has a fresh frame.
    fn run(slots: u64, captured: impl Fn(u64) -> bool) -> Vec<(Pick, Option<Change>)> {
        let mut c = LossClock::new(Duration::from_millis(500), Duration::from_millis(1000), 0);
        let mut have_last = false;
        (0..slots)
            .map(|i| {
                let fresh = captured(i);
                let r = c.pick(i * 33 * MS, fresh, have_last, true);
                have_last |= fresh;
                r
            })
            .collect()
    }

    #[test]
    fn a_skipped_capture_frame_is_filled_by_repeating_the_previous_one_without_calling_the_input_lost() {
        let out = run(100, |i| !(40..45).contains(&i));
        assert!(out[..40].iter().all(|r| *r == (Pick::Live, None)));
        assert!(out[40..45].iter().all(|r| *r == (Pick::Repeat, None)));
        assert!(out[45..].iter().all(|r| *r == (Pick::Live, None)));
    }

    #[test]
    fn a_lost_input_repeats_the_last_frame_then_shows_the_slate_and_comes_back_on_the_first_frame() {
        // Frames 0..30 captured, then nothing until slot 200.
        let out = run(260, |i| !(30..200).contains(&i));
        let lost_at = out.iter().position(|r| r.1 == Some(Change::Lost)).unwrap();
        // The last frame was at slot 29 (957 ms); 500 ms later is slot 45.
        assert_eq!(lost_at, 45);
        assert!(out[30..=lost_at].iter().all(|r| r.0 == Pick::Repeat));
        // Repeated for another second after the loss, then the slate.
        let slate_from = out.iter().position(|r| r.0 == Pick::Slate).unwrap();
        assert_eq!(slate_from, 75);
        assert!(out[lost_at..slate_from].iter().all(|r| r.0 == Pick::Repeat));
        assert!(out[slate_from..200].iter().all(|r| r.0 == Pick::Slate));
        assert_eq!(out[200], (Pick::Live, Some(Change::Back)));
        assert!(out[201..].iter().all(|r| *r == (Pick::Live, None)));
    }

    #[test]
    fn with_no_frame_ever_captured_the_slate_goes_on_once_the_input_is_lost() {
        let mut c = LossClock::new(Duration::from_millis(500), Duration::from_millis(1000), 0);
        assert_eq!(c.pick(100 * MS, false, false, true), (Pick::Nothing, None));
        assert_eq!(c.pick(500 * MS, false, false, true), (Pick::Slate, Some(Change::Lost)));
        // The slate pipeline not ready yet: nothing rather than a wrong frame.
        let mut c = LossClock::new(Duration::from_millis(500), Duration::ZERO, 0);
        assert_eq!(c.pick(600 * MS, false, true, false), (Pick::Repeat, Some(Change::Lost)));
    }

    #[test]
    fn a_live_frame_goes_out_as_the_captured_buffer_itself_so_its_pool_can_take_it_back() {
        gst::init().unwrap();
        let mut last = None;
        let first = gst::Buffer::with_size(16).unwrap();
        let first_ptr = first.as_ptr();
        let out = live(first, 33 * MS, 33 * MS, &mut last);
        assert_eq!(out.as_ptr(), first_ptr, "the live frame was copied");
        assert_eq!(out.pts(), Some(gst::ClockTime::from_nseconds(33 * MS)));
        drop(out);
        // The next live frame is not copied either, and becomes the last one.
        let second = gst::Buffer::with_size(16).unwrap();
        let second_ptr = second.as_ptr();
        let out = live(second, 66 * MS, 33 * MS, &mut last);
        assert_eq!(out.as_ptr(), second_ptr);
        assert_eq!(last.as_ref().map(|b| b.as_ptr()), Some(second_ptr), "the last frame is the one that went out");
        // A repeat is a new buffer on the same picture, stamped for its slot.
        let again = retimed_copy(last.as_ref().unwrap(), 99 * MS, 33 * MS);
        assert_ne!(again.as_ptr(), second_ptr);
        assert_eq!(again.pts(), Some(gst::ClockTime::from_nseconds(99 * MS)));
        assert_eq!(out.pts(), Some(gst::ClockTime::from_nseconds(66 * MS)), "the repeat must not retime the frame already sent");
    }

    #[test]
    fn slots_are_exact_at_fractional_rates_and_found_again_from_a_time() {
        let fps = Fps { num: 30000, den: 1001 };
        assert_eq!(slot_ns(0, 30000, fps), 1001 * 1_000_000_000);
        assert_eq!(slot_at(0, slot_ns(0, 1234, fps), fps), 1234);
        assert_eq!(slot_at(0, slot_ns(0, 1234, fps) + 1, fps), 1235);
    }
}
