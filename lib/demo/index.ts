// tessera/demo: the Moving MNIST demo on top of the library: its pipeline and stages,
// report, pretrained bundle, and the prompt-adherence evaluation it is judged by (an MNIST
// digit classifier and motion estimation). `npx tessera demo` runs it.
export { trainDemoVAE, loadDemoVAE, demoVAESettings, demoVAEFiles, demoHeldOut } from './vae_stage';
export type { DemoVAESettings, TrainDemoVAEOptions, DemoVAEMetrics, DemoVAEResult } from './vae_stage';
export {
  demoDiTSettings, HELD_OUT_PROMPTS, encodeDemoLatents, trainDemoDiT, evaluateDemo, sampleVideos, createDemoDiT, saveDemoDiT, loadDemoDiT,
  demoTrainClips,
} from './dit_stage';
export type { DemoDiTSettings, SamplingInfo, SampleVideosOptions, TrainDemoDiTResult } from './dit_stage';
export {
  runDemo, planDemo, describePlan, loadDemoModels, demoFiles, writeDemoReport, encodeLatentsUntil, DEMO_BUDGETS, DEMO_STAGES,
} from './pipeline';
export type { RunDemoOptions, RunDemoResult, DemoPlan, DemoState, DemoStage, DemoMetrics } from './pipeline';
export { savePretrained, loadPretrained, PRETRAINED_DIR } from './pretrained';
export type { Pretrained } from './pretrained';
export { renderReport, writeReport, lossCurveSvg, readLossLog, REPORT_FIGURES } from './report';
export type { DemoReportInput, LossPoint } from './report';
export {
  DigitClassifier, loadDigitClassifier, saveDigitClassifier, trainDigitClassifier, digitTestAccuracy, classifyVideoDigits,
  centerOfMass, cropAt, cropDigit, DIGIT_CLASSIFIER_FILE,
} from './digits';
export type { DigitPrediction, TrainDigitClassifierOptions } from './digits';
export { estimateDirection, estimateDirections, estimateMotionRaw } from './motion';
export type { MotionEstimate, MotionOptions } from './motion';
export { evaluatePromptAdherence, parsePrompt } from './adherence';
export type { AdherenceOptions, AdherenceReport, PromptAdherence, PromptInput, PromptTarget, SampleJudgement } from './adherence';
