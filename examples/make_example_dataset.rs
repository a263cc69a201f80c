//! Writes the bundled example dataset `fixtures/datasets/ink-foxes/`: a small
//! style set with a few of the problems the audit exists to catch (a missing
//! caption, a caption without the trigger word, a picture too small, a cut-off
//! JPEG). Run `cargo run --example make_example_dataset` to regenerate it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

use std::path::Path;

use thumbs::synth;

/// Quality 70 keeps the committed example small.
fn jpeg(pic: &image::DynamicImage) -> Result<Vec<u8>, image::ImageError> {
    let mut out = std::io::Cursor::new(Vec::new());
    pic.to_rgb8()
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut out, 70,
        ))?;
    Ok(out.into_inner())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new("fixtures/datasets/ink-foxes");
    std::fs::create_dir_all(dir)?;
    let subjects = [
        "a fox sleeping under a pine tree",
        "a fox crossing a frozen river",
        "two foxes in tall grass at dusk",
        "a fox looking up at the moon",
        "a fox cub by a mossy stone",
        "a fox in falling snow",
        "a fox on a hillside at dawn",
        "a fox drinking from a stream",
    ];
    for (i, subject) in subjects.iter().enumerate() {
        let (w, h) = if i % 3 == 0 { (576, 640) } else { (640, 544) };
        let pic = image::DynamicImage::ImageRgb8(synth::smooth_picture(100 + i as u64, w, h));
        let bytes = jpeg(&pic)?;
        let name = format!("fox-{:02}", i + 1);
        match i {
            // Cut short, as an interrupted download would be.
            6 => std::fs::write(dir.join(format!("{name}.jpg")), &bytes[..bytes.len() / 2])?,
            _ => std::fs::write(dir.join(format!("{name}.jpg")), &bytes)?,
        }
        let caption = match i {
            3 => continue, // no caption at all
            5 => format!("{subject}, sumi ink wash, soft grey gradients, loose brush edges"),
            _ => format!(
                "zkinkfox, {subject}, sumi ink wash, soft grey gradients, loose brush edges"
            ),
        };
        std::fs::write(dir.join(format!("{name}.txt")), caption)?;
    }
    let small = image::DynamicImage::ImageRgb8(synth::smooth_picture(999, 320, 240));
    std::fs::write(dir.join("fox-thumbnail.jpg"), jpeg(&small)?)?;
    std::fs::write(
        dir.join("fox-thumbnail.txt"),
        "zkinkfox, a small fox sketch, sumi ink wash",
    )?;
    Ok(())
}
