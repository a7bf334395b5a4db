// Entry point of the bundle: build-bundle.mjs points @remotion/bundler at this file.
import {registerRoot} from 'remotion';
import {RemotionRoot} from './Root';

registerRoot(RemotionRoot);
