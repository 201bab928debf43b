//! The camera of the input-loss tests: a FIFO fed by ffmpeg with a picture
//! that changes every frame (so a frozen camera is seen as repeated frames),
//! a green slate image, and frames decoded small and classified as live,
//! still (the previous frame repeated) or slate.

use std::path::Path;
use std::process::{Command, Stdio};

/// Decoded frames are judged at this size (RGB).
pub const THUMB: (usize, usize) = (32, 18);
/// The slate's colour: a green no test picture averages to.
pub const SLATE_RGB: [f64; 3] = [0.0, 200.0, 0.0];

/// A 16:9 slate smaller than the picture (it is scaled, not refused).
pub fn slate_image(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("slate.png");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "color=c=0x00C800:s=320x180", "-frames:v", "1", "-y"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    path
}

/// A live camera into `fifo`: a moving, hue-cycling picture (every frame
/// differs from the last), restarted whenever a reader closes the pipe (the
/// start's feeder check and format probe do).
pub fn feeder(fifo: &Path, w: u32, h: u32) -> std::process::Child {
    feeder_at(fifo, w, h, 1.0)
}

/// [`feeder`] writing at `speed` times real time (0.5: a camera that
/// promises 30 fps and delivers 15).
pub fn feeder_at(fifo: &Path, w: u32, h: u32, speed: f64) -> std::process::Child {
    let script = format!(
        "while :; do ffmpeg -v quiet -readrate {speed} -f lavfi -i 'testsrc2=size={w}x{h}:rate=30,hue=H=2*PI*t' -t 600 -pix_fmt yuv420p -f yuv4mpegpipe -y '{}'; sleep 0.1; done",
        fifo.display()
    );
    Command::new("sh").args(["-c", &script]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

pub fn feeder_pid(fifo: &Path) -> Option<String> {
    let out = Command::new("pgrep").args(["-f", &format!("yuv4mpegpipe -y {}", fifo.display())]).output().ok()?;
    String::from_utf8(out.stdout).ok()?.split_whitespace().next().map(str::to_string)
}


/// Every frame of `file`, decoded and shrunk to [`THUMB`], as RGB bytes.
pub fn thumbnails(file: &Path) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-vf", &format!("scale={}:{}", THUMB.0, THUMB.1), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(THUMB.0 * THUMB.1 * 3).map(<[u8]>::to_vec).collect()
}

pub fn mean_rgb(f: &[u8]) -> [f64; 3] {
    let mut m = [0.0; 3];
    for px in f.chunks_exact(3) {
        for c in 0..3 {
            m[c] += f64::from(px[c]);
        }
    }
    m.map(|x| x / (f.len() / 3) as f64)
}

pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs()).sum::<f64>() / a.len() as f64
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Live,
    /// The same picture as the frame before.
    Still,
    Slate,
}

pub fn classify(frames: &[Vec<u8>], slate: &[u8]) -> Vec<Kind> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let m = mean_rgb(f);
            if mean_abs_diff(f, slate) < 12.0 && (0..3).all(|c| (m[c] - SLATE_RGB[c]).abs() < 30.0) {
                Kind::Slate
            } else if i > 0 && mean_abs_diff(f, &frames[i - 1]) < 1.5 {
                Kind::Still
            } else {
                Kind::Live
            }
        })
        .collect()
}

/// Runs of equal kinds: (kind, first frame, frames).
pub fn runs(kinds: &[Kind]) -> Vec<(Kind, usize, usize)> {
    let mut out: Vec<(Kind, usize, usize)> = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        match out.last_mut() {
            Some(r) if r.0 == *k => r.2 += 1,
            _ => out.push((*k, i, 1)),
        }
    }
    out
}

