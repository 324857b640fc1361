// Evaluation: image metrics, the digit classifier, motion estimation and prompt adherence.
export * from './metrics';
export {
  DigitClassifier, loadDigitClassifier, saveDigitClassifier, trainDigitClassifier, digitTestAccuracy, classifyVideoDigits,
  centerOfMass, cropAt, cropDigit, DIGIT_CLASSIFIER_FILE,
} from './digits';
export type { DigitPrediction, TrainDigitClassifierOptions } from './digits';
export { estimateDirection, estimateDirections, estimateMotionRaw } from './motion';
export type { MotionEstimate, MotionOptions } from './motion';
export { evaluatePromptAdherence, parsePrompt } from './adherence';
export type { AdherenceOptions, AdherenceReport, PromptAdherence, PromptInput, PromptTarget, SampleJudgement } from './adherence';
