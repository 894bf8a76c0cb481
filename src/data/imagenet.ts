import type { Rgb } from './decode-task.js';

/** ImageNet's per-channel statistics, which torchvision-style pretrained weights expect (config data.mean/std's defaults). */
export const IMAGENET_MEAN: Rgb = [0.485, 0.456, 0.406];
export const IMAGENET_STD: Rgb = [0.229, 0.224, 0.225];
