import { Annotations, Aspects, Fn, IAspect, Lazy, Names, Stack, Token, aws_amazonmq as amazonmq } from 'aws-cdk-lib';
import { Construct, IConstruct } from 'constructs';
import { MqAccess, MqDestination, MqDestinationKind } from './mq-destination';
import { renderConfiguration, sanitizationProblems } from './private/activemq-schema';
import { AccessRule, authorizationMapElement, firstUseNotes, groupProblems, ruleGroups } from './private/authorization';
import { brokerLabel, declareAuthorizationMap, declaredUsersOf } from './private/broker-registry';
import { WEB_CONSOLE_GROUP } from './private/rules';

/** Amazon MQ's configuration names: 1 to 150 characters of A-Z a-z 0-9 - . _ ~ */
const CONFIGURATION_NAME = /^[A-Za-z0-9._~-]{1,150}$/;

/** Properties of an MqAuthorizationMap. */
export interface MqAuthorizationMapProps {
  /**
   * The Amazon MQ for ActiveMQ broker whose destinations the map governs: a `CfnBroker` of the same stack,
   * with literal `engineType` (`ACTIVEMQ`) and `engineVersion`, simple authentication, and no `configuration`
   * of its own (the map writes the broker's configuration and points the broker at it).
   */
  readonly broker: amazonmq.CfnBroker;

  /**
   * The name of the Amazon MQ configuration.
   *
   * 1 to 150 characters of `A-Z a-z 0-9 - . _ ~`.
   *
   * @default - a name made from the construct path, unique in the app
   */
  readonly configurationName?: string;

  /**
   * The description of each configuration revision.
   *
   * @default "Authorization map of <construct path>, written by cdk-mq-user"
   */
  readonly description?: string;
}

/**
 * Which ActiveMQ groups may read, write or administer which queues and topics of an Amazon MQ for ActiveMQ
 * broker, declared in stack code.
 *
 * It writes the broker's configuration (an `AWS::AmazonMQ::Configuration` whose revision the broker points at)
 * holding only an authorization map: one entry per destination pattern of `allow`, and safe defaults: every
 * group a rule names may use the `ActiveMQ.Advisory.>` topics; temporary destinations only for the groups of
 * `MqDestination.temporary()` rules; `activemq-webconsole` (the web console) everywhere; every other group
 * nowhere, so a destination no rule names is refused to everyone but the web console. The map contains only
 * elements and attributes Amazon MQ permits for the broker's engine version (else synthesis fails, naming the
 * rule), so Amazon MQ never removes part of it.
 *
 * Like a user's change, a new revision applies at the broker's next reboot or maintenance window.
 */
export class MqAuthorizationMap extends Construct {
  /** The configuration resource the broker points at. */
  public readonly configuration: amazonmq.CfnConfiguration;

  private readonly broker: amazonmq.CfnBroker;
  private readonly rules: AccessRule[] = [];
  private readonly brokerConfiguration: amazonmq.CfnBroker.ConfigurationIdProperty;

  constructor(scope: Construct, id: string, props: MqAuthorizationMapProps) {
    super(scope, id);
    const broker = props.broker;
    const errors = this.checkBroker(broker, props.configurationName);
    if (errors.length > 0) throw new Error(`MqAuthorizationMap ${this.node.path}: ${errors.join('; ')}`);
    this.broker = broker;

    this.configuration = new amazonmq.CfnConfiguration(this, 'Resource', {
      name:
        props.configurationName ??
        Names.uniqueResourceName(this, { maxLength: 150, separator: '-', allowedSpecialCharacters: '-_.~' }),
      engineType: broker.engineType,
      engineVersion: broker.engineVersion,
      authenticationStrategy: 'SIMPLE',
      description: props.description ?? `Authorization map of ${this.node.path}, written by cdk-mq-user`,
      // Fn::Base64 of the XML as written: the template (and `cdk diff`) shows the map readable.
      data: Fn.base64(Lazy.string({ produce: () => this.configurationXml() })),
    });
    this.node.defaultChild = this.configuration;
    this.brokerConfiguration = { id: this.configuration.attrId, revision: this.configuration.attrRevision };
    broker.configuration = this.brokerConfiguration;
    // An MqBrokerReboot of the broker in this stack reboots when this deploy's revision is pending.
    declareAuthorizationMap(this, broker, this.brokerConfiguration);

    this.node.addValidation({ validate: () => this.validate() });
    const aspect: IAspect = { visit: (node: IConstruct) => (node === this ? this.annotate() : undefined) };
    Aspects.of(this).add(aspect);
  }

  /**
   * Lets groups use the destinations: `read` to receive, `write` to send, `admin` to create (on first use) and delete.
   *
   * Rules add up: several rules on one pattern merge, and a destination matched by several patterns is open to the
   * groups of all of them.
   *
   * Throws when a group is not a valid Amazon MQ group name or the rule names no group.
   */
  public allow(destination: MqDestination, access: MqAccess): void {
    const label = `rule ${this.rules.length + 1} (${destination.toString()})`;
    const read = access.read ?? [];
    const write = access.write ?? [];
    const admin = access.admin ?? [];
    const problems: string[] = [];
    for (const group of [...read, ...write, ...admin]) {
      if (Token.isUnresolved(group)) {
        problems.push('a group is a token: the authorization map is checked and written at synth time');
      } else {
        problems.push(...groupProblems(group));
      }
    }
    if (read.length + write.length + admin.length === 0) {
      problems.push('it names no group: give read, write or admin at least one group');
    }
    if (problems.length > 0) {
      throw new Error(`MqAuthorizationMap ${this.node.path}: ${label}: ${[...new Set(problems)].join('; ')}`);
    }
    this.rules.push({
      kind: destination.kind === MqDestinationKind.TEMPORARY ? 'temporary' : destination.kind,
      pattern: destination.pattern,
      read: [...read],
      write: [...write],
      admin: [...admin],
      label,
    });
  }

  /** The configuration document (XML) as the broker receives it. */
  private configurationXml(): string {
    return renderConfiguration(authorizationMapElement(this.rules));
  }

  private checkBroker(broker: amazonmq.CfnBroker, configurationName: string | undefined): string[] {
    const errors: string[] = [];
    if (Stack.of(broker) !== Stack.of(this)) {
      errors.push(
        `broker ${broker.node.path} is in stack ${Stack.of(broker).stackName}: declare the MqAuthorizationMap in ` +
          "the broker's stack (it sets the broker's configuration)",
      );
    }
    if (Token.isUnresolved(broker.engineType) || broker.engineType.toUpperCase() !== 'ACTIVEMQ') {
      errors.push(
        `broker ${broker.node.path} has engineType "${broker.engineType}": an authorization map needs ACTIVEMQ`,
      );
    }
    if (broker.engineVersion === undefined || Token.isUnresolved(broker.engineVersion)) {
      errors.push(
        `broker ${broker.node.path} needs a literal engineVersion: the map is checked against what Amazon MQ ` +
          'permits for that version',
      );
    }
    const strategy = broker.authenticationStrategy;
    if (strategy !== undefined && (Token.isUnresolved(strategy) || strategy.toUpperCase() !== 'SIMPLE')) {
      errors.push(
        `broker ${broker.node.path} has authenticationStrategy "${strategy}": the map governs the groups of ` +
          'simple authentication (the users of MqUser and the broker)',
      );
    }
    if (broker.configuration !== undefined) {
      errors.push(
        `broker ${broker.node.path} already has a configuration (${JSON.stringify(Stack.of(broker).resolve(broker.configuration))}): ` +
          "an MqAuthorizationMap writes the broker's whole configuration and would drop its settings. Remove the " +
          "broker's configuration (moving what it sets elsewhere), or keep it and write its authorization map by hand",
      );
    }
    if (configurationName !== undefined && !Token.isUnresolved(configurationName)) {
      if (!CONFIGURATION_NAME.test(configurationName)) {
        errors.push(`configurationName "${configurationName}" must be 1 to 150 characters of A-Z a-z 0-9 - . _ ~`);
      }
    }
    return errors;
  }

  private validate(): string[] {
    const errors: string[] = [];
    if (this.broker.configuration !== this.brokerConfiguration) {
      errors.push(
        `the configuration of broker ${this.broker.node.path} was changed after this MqAuthorizationMap set it: ` +
          'the broker would not apply the map. Leave broker.configuration to the MqAuthorizationMap',
      );
    }
    const version = this.broker.engineVersion;
    if (version !== undefined && !Token.isUnresolved(version)) {
      errors.push(...sanitizationProblems(authorizationMapElement(this.rules), version));
    }
    return errors;
  }

  /** Synth-time warnings about the rules against the broker's users. */
  private annotate(): void {
    const annotations = Annotations.of(this);
    const broker = brokerLabel(this.broker);
    if (this.rules.length === 0) {
      annotations.addWarningV2(
        'cdk-mq-user:authorizationMapWithoutRules',
        `this authorization map has no rule: only ${WEB_CONSOLE_GROUP} may use the destinations of broker ${broker}. ` +
          'Add rules with allow(destination, access)',
      );
    }
    const named = new Set(ruleGroups(this.rules));

    // Who carries each group: the app's MqUsers of this broker, and the broker's own users list.
    const carriers = new Map<string, string[]>();
    const carry = (group: unknown, who: string) => {
      if (typeof group !== 'string' || Token.isUnresolved(group)) return;
      carriers.set(group, [...(carriers.get(group) ?? []), who]);
    };
    for (const user of declaredUsersOf(this, this.broker)) {
      const groups = (user.properties as { Groups?: unknown }).Groups;
      const name = Token.isUnresolved(user.username) ? user.path : `"${user.username}" (${user.path})`;
      if (Array.isArray(groups)) groups.forEach((group) => carry(group, `MqUser ${name}`));
    }
    const own = Token.isUnresolved(this.broker.users) ? [] : ((this.broker.users as unknown[]) ?? []);
    for (const user of own) {
      const { username, groups } = (user ?? {}) as { username?: unknown; groups?: unknown };
      const name = typeof username === 'string' && !Token.isUnresolved(username) ? `"${username}"` : '(a token)';
      if (Array.isArray(groups)) groups.forEach((group) => carry(group, `the broker's own user ${name}`));
    }

    for (const [group, who] of [...carriers].sort(([a], [b]) => a.localeCompare(b))) {
      if (named.has(group) || group === WEB_CONSOLE_GROUP) continue;
      annotations.addWarningV2(
        'cdk-mq-user:groupWithoutRule',
        `group "${group}" of ${[...new Set(who)].join(', ')} is named by no rule of this authorization map: its ` +
          `members may use no queue, topic or temporary destination of broker ${broker}. Add a rule for it ` +
          '(allow(MqDestination.queue(...), { read: [...] })), or remove the group from the users',
      );
    }
    for (const group of named) {
      if (carriers.has(group) || group === WEB_CONSOLE_GROUP) continue;
      const rules = this.rules
        .filter((rule) => [...rule.read, ...rule.write, ...rule.admin].includes(group))
        .map((rule) => rule.label);
      annotations.addWarningV2(
        'cdk-mq-user:groupWithoutUser',
        `group "${group}" (${rules.join(', ')}) is carried by no MqUser of broker ${broker} in this app, nor by the ` +
          "broker's own users: right when users created elsewhere carry it; otherwise check its spelling, since a " +
          'group no user carries lets no one in',
      );
    }
    for (const note of firstUseNotes(this.rules)) {
      annotations.addWarningV2('cdk-mq-user:firstUseNeedsAdmin', note);
    }
  }
}
