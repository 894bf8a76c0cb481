import { resolveConfig, type Config } from '../config.js';
import { SlferModel } from '../model/slfer.js';
import { assertSameLayout, loadCheckpoint } from './checkpoint.js';

/** A trained model from a checkpoint (a run folder or an epoch folder), with the config it was trained with. */
export function loadTrainedModel(checkpoint: string): { model: SlferModel; config: Config; path: string; epoch: number } {
  const state = loadCheckpoint(checkpoint);
  const config = resolveConfig(state.config, `${state.path}/manifest.json`);
  const model = new SlferModel(state.model, config.train.seed);
  try {
    assertSameLayout(state.path, { params: model.store.paramSpecs, buffers: model.store.bufferSpecs }, state.specs);
    model.store.write(state.params, state.buffers);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, config, path: state.path, epoch: state.epoch };
}
