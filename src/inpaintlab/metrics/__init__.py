"""PSNR, SSIM, hole L1, edge precision/recall, LPIPS and FID, per hole-ratio bin."""
