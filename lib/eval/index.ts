// Evaluation metrics on videos: PSNR, SSIM and MSE (per clip, or averaged). The demo's
// prompt-adherence evaluation (an MNIST digit classifier and motion estimation) is in
// 'tessera/demo'.
export * from './metrics';
