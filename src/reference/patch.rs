//! im2col in f64: images [B, C, H, W] → patches [B, N, C·p·p].

pub fn im2col_forward(images: &[f64], [batch, channels, height, width]: [usize; 4], p: usize) -> Vec<f64> {
    let (gh, gw) = (height / p, width / p);
    let mut out = Vec::with_capacity(images.len());
    for b in 0..batch {
        for gy in 0..gh {
            for gx in 0..gw {
                for c in 0..channels {
                    for ky in 0..p {
                        for kx in 0..p {
                            out.push(images[((b * channels + c) * height + gy * p + ky) * width + gx * p + kx]);
                        }
                    }
                }
            }
        }
    }
    out
}
