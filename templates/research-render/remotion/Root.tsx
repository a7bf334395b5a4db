import React from 'react';
import {Composition} from 'remotion';
import type {CalculateMetadataFunction} from 'remotion';
import {Explainer, checkProps} from './Explainer';
import type {ExplainerProps} from './Explainer';

// Size, fps and length come from the props the template sends; a bad field fails the render
// with a message naming it.
const metadata: CalculateMetadataFunction<ExplainerProps> = ({props}) => {
	const p = checkProps(props);
	const durationInFrames = p.scenes.reduce((sum, s) => sum + Math.max(1, Math.round(s.durationSeconds * p.fps)), 0);
	return {width: p.width, height: p.height, fps: p.fps, durationInFrames, props: p};
};

export const Root: React.FC = () => (
	<Composition
		id="Explainer"
		component={Explainer}
		width={1280}
		height={720}
		fps={30}
		durationInFrames={30}
		defaultProps={{} as ExplainerProps}
		calculateMetadata={metadata}
	/>
);
