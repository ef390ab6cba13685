/**
 * Work the handler answered but could not finish (a rollback that could not restore or delete a user, a cleanup
 * Delete that could not delete one) leaves the stack looking fine: the handler marks its log line, the handler's log
 * group counts those lines, and `MqUserProvider.unfinishedWorkAlarm` goes to ALARM. The lifecycle scenarios that
 * reach each such path check the marked line (test/reboot-waits.lifecycle.test.ts); this checks both ends meet.
 */
import { App, Stack, aws_cloudwatch_actions as actions, aws_sns as sns } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { MqBroker, MqUser, MqUserProvider } from '../lib';
import { UNFINISHED_WORK_MARKER } from '../lib/private/handler-props';
import { registerSensitive, resetSensitive, unfinished, warn } from '../lambda/shared/log';

const BROKER_ARN = 'arn:aws:mq:us-east-1:123456789012:broker:orders:b-1234a5b6-78cd-901e-2fab-3c45d6e178f9';

function stackWithUser(): Stack {
  const stack = new Stack(new App(), 'Orders');
  new MqUser(stack, 'User', {
    broker: MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN),
    username: 'orders-app',
  });
  return stack;
}

describe('the unfinished-work alarm', () => {
  let template: Template;
  beforeAll(() => {
    template = Template.fromStack(stackWithUser());
  });

  test("counts the marked lines of the handler's own log group, per stack", () => {
    const handlerLogs = Object.keys(template.findResources('AWS::Logs::LogGroup')).find((id) =>
      id.includes('HandlerLogs'),
    );
    expect(handlerLogs).toBeDefined();
    template.resourceCountIs('AWS::Logs::MetricFilter', 1);
    template.hasResourceProperties('AWS::Logs::MetricFilter', {
      LogGroupName: { Ref: handlerLogs },
      // A quoted term matches the line in Lambda's text and JSON log formats alike.
      FilterPattern: `"${UNFINISHED_WORK_MARKER}"`,
      MetricTransformations: [
        {
          MetricNamespace: 'cdk-mq-user',
          MetricName: { 'Fn::Join': ['', ['UnfinishedWork-', { Ref: 'AWS::StackName' }]] },
          MetricValue: '1',
        },
      ],
    });
  });

  test('goes to ALARM on one marked line and stays there until someone sets it back', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 1);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'cdk-mq-user',
      MetricName: { 'Fn::Join': ['', ['UnfinishedWork-', { Ref: 'AWS::StackName' }]] },
      Statistic: 'Sum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
      // No data comes between marked lines: "ignore" keeps the ALARM state instead of falling back to OK.
      TreatMissingData: 'ignore',
      AlarmDescription: Match.stringLikeRegexp('Troubleshooting'),
    });
  });

  test('takes the actions a user adds', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmActions: Match.absent() });
    const stack = stackWithUser();
    const topic = new sns.Topic(stack, 'Oncall');
    MqUserProvider.getOrCreate(stack).unfinishedWorkAlarm.addAlarmAction(new actions.SnsAction(topic));
    Template.fromStack(stack).hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmActions: [{ Ref: Match.stringLikeRegexp('Oncall') }],
    });
  });
});

describe('the marked log line', () => {
  let lines: string[];
  beforeEach(() => {
    lines = [];
    jest.spyOn(console, 'warn').mockImplementation((line: string) => void lines.push(line));
    resetSensitive();
  });
  afterEach(() => jest.restoreAllMocks());

  test('carries the word the filter matches, and no secret', () => {
    registerSensitive('Sup3r-Secret');
    unfinished('rollback: could not restore Sup3r-Secret', { reason: 'Sup3r-Secret refused' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(UNFINISHED_WORK_MARKER);
    expect(lines[0]).not.toContain('Sup3r-Secret');
    expect(JSON.parse(lines[0])).toMatchObject({ level: 'WARN', alarm: UNFINISHED_WORK_MARKER });
  });

  test('a plain warning is not counted', () => {
    warn('a rotation sent this user a new password meanwhile: sending that one');
    expect(lines.join('\n')).not.toContain(UNFINISHED_WORK_MARKER);
  });
});
