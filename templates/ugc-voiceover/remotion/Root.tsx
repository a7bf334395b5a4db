import React from 'react';
import {Composition} from 'remotion';
import type {CalculateMetadataFunction} from 'remotion';
import {UgcVideo, checkProps} from './UgcVideo';
import type {UgcProps} from './UgcVideo';

// Size, fps and length come from the props the template sends; a bad field fails the render
// with a message naming it (the host shows it to the customer).
const metadata: CalculateMetadataFunction<UgcProps> = ({props}) => {
	const p = checkProps(props);
	const durationInFrames = p.scenes.reduce((sum, s) => sum + Math.max(1, Math.round(s.durationSeconds * p.fps)), 0);
	return {width: p.width, height: p.height, fps: p.fps, durationInFrames, props: p};
};

export const Root: React.FC = () => (
	<Composition
		id="UgcVideo"
		component={UgcVideo}
		width={720}
		height={1280}
		fps={30}
		durationInFrames={30}
		defaultProps={{} as UgcProps}
		calculateMetadata={metadata}
	/>
);
