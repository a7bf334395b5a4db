import React from 'react';
import {Composition} from 'remotion';
import type {CalculateMetadataFunction} from 'remotion';
import {
	DEFAULT_FPS,
	DEFAULT_HEIGHT,
	DEFAULT_WIDTH,
	secondsToFrames,
	validateSlideshowProps,
	validateTitleCardProps,
} from './props.js';
import {Slideshow, slideshowTimeline} from './Slideshow';
import type {SlideshowProps} from './Slideshow';
import {TitleCard} from './TitleCard';
import type {TitleCardProps} from './TitleCard';

// Size, fps and duration of every composition come from its input props. The
// validators throw an error naming the bad field ("Invalid input props for
// Slideshow: scenes[1].durationSeconds must be ..."), which selectComposition()
// reports to render.mjs.
const slideshowMetadata: CalculateMetadataFunction<SlideshowProps> = ({props}) => {
	const p = validateSlideshowProps(props);
	const {totalFrames} = slideshowTimeline(p.scenes, p.fps);
	return {width: p.width, height: p.height, fps: p.fps, durationInFrames: totalFrames, props: p};
};

const titleCardMetadata: CalculateMetadataFunction<TitleCardProps> = ({props}) => {
	const p = validateTitleCardProps(props);
	return {
		width: p.width,
		height: p.height,
		fps: p.fps,
		durationInFrames: secondsToFrames(p.durationSeconds, p.fps),
		props: p,
	};
};

// defaultProps are deliberately empty: Remotion merges them under the input props,
// so a default for a required field would hide a missing field in a request.
export const RemotionRoot: React.FC = () => {
	return (
		<>
			<Composition
				id="Slideshow"
				component={Slideshow}
				width={DEFAULT_WIDTH}
				height={DEFAULT_HEIGHT}
				fps={DEFAULT_FPS}
				durationInFrames={DEFAULT_FPS}
				defaultProps={{} as SlideshowProps}
				calculateMetadata={slideshowMetadata}
			/>
			<Composition
				id="TitleCard"
				component={TitleCard}
				width={DEFAULT_WIDTH}
				height={DEFAULT_HEIGHT}
				fps={DEFAULT_FPS}
				durationInFrames={DEFAULT_FPS}
				defaultProps={{} as TitleCardProps}
				calculateMetadata={titleCardMetadata}
			/>
		</>
	);
};
